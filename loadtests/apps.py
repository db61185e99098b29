from __future__ import annotations

from django.apps import AppConfig


class LoadtestsConfig(AppConfig):
    name = "loadtests"
    verbose_name = "Load tests"

    def ready(self) -> None:
        from loadtests import signals  # noqa: F401 - connects the Celery worker and beat hooks
