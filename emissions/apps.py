from __future__ import annotations

from django.apps import AppConfig


class EmissionsConfig(AppConfig):
    name = "emissions"
    verbose_name = "Emissions reference workload"

    def ready(self) -> None:
        # Declares the app's cache strategies, so the Cache page lists them before any use.
        from emissions import cache  # noqa: F401
