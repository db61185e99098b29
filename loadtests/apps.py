from __future__ import annotations

from django.apps import AppConfig


class LoadtestsConfig(AppConfig):
    name = "loadtests"
    verbose_name = "Load tests"

    def ready(self) -> None:
        # signals connects the Celery worker and beat hooks.
        from loadtests import alerts, events, signals  # noqa: F401

        # Also registers the alerts' Celery task (deliver_alerts) wherever Django starts.
        events.run_finished.connect(alerts.on_run_finished, dispatch_uid="loadtests.alerts")
        # Keeps each definition's beat entry in sync as it is saved and deleted.
        from loadtests import schedules  # noqa: F401
