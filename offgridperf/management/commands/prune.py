"""`manage.py prune [--dry-run]`: delete what is older than the RETENTION_* settings allow."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from offgridperf import retention


class Command(BaseCommand):
    help = (
        "Delete run intervals, profile captures (with their artefacts), query windows and "
        "memory samples older than the RETENTION_* settings allow. Kept runs, baselines and "
        "their captures are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only say what would be deleted."
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        counts = retention.prune(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for kind in retention.KINDS:
            days = getattr(settings, kind.setting)
            rule = f"older than {days} days" if days else f"kept for ever ({kind.setting}=0)"
            self.stdout.write(f"{kind.label}: {verb} {counts[kind.name]} ({rule})")
