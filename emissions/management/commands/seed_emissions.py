"""Seed the emissions workload: emission factors and calculated activity batches."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from emissions import seeding
from emissions.models import Activity, ActivityBatch


class Command(BaseCommand):
    help = (
        "Seed emission factors and ~25,000-row calculated batches (200,000 activities by "
        "default). Replaces earlier seeded batches; --if-empty skips when any batch exists."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--activities", type=int, default=200_000, help="rows to create")
        parser.add_argument("--if-empty", action="store_true", help="do nothing if data exists")
        parser.add_argument("--seed", type=int, default=42, help="random seed (reproducible)")

    def handle(self, *args: Any, **options: Any) -> None:
        activities = options["activities"]
        if not 1 <= activities <= 50_000_000:
            raise CommandError("--activities must be a whole number from 1 to 50,000,000")
        if options["if_empty"] and ActivityBatch.objects.exists():
            self.stdout.write("emissions: data present, not seeding")
            return
        started = time.monotonic()
        batches = seeding.seed(activities, seed_value=options["seed"])
        elapsed = time.monotonic() - started
        rows = Activity.objects.filter(batch__in=batches).count()
        self.stdout.write(
            f"emissions: seeded {rows:,} activities in {len(batches)} batches "
            f"in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s, calculation included)"
        )
