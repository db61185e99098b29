"""Register the reference load tests (emissions-smoke, emissions-steady) unless they exist."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from emissions.loadtest_profiles import reference_definitions
from loadtests.services import ensure_definition


class Command(BaseCommand):
    help = "Create the emissions reference load-test definitions; never overwrites edits."

    def handle(self, *args: Any, **options: Any) -> None:
        for spec in reference_definitions():
            definition, created = ensure_definition(spec)
            verb = "registered" if created else "exists (left as edited)"
            self.stdout.write(f"load test {definition.name!r}: {verb}")
