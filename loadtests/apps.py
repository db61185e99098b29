from __future__ import annotations

from django.apps import AppConfig


class LoadtestsConfig(AppConfig):
    name = "loadtests"
    verbose_name = "Load tests"

    def ready(self) -> None:
        # workerhooks connects the Celery worker and beat hooks.
        from loadtests import events, tasks, workerhooks  # noqa: F401

        # Also registers the app's Celery tasks (deliver_alerts among them) wherever Django starts.
        events.run_finished.connect(tasks.on_run_finished, dispatch_uid="loadtests.alerts")
        # Keeps each definition's beat entry in sync as it is saved and deleted.
        from loadtests import schedules  # noqa: F401
