from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "offgridperf"
    verbose_name = "offgridperf"

    def ready(self) -> None:
        # The web process queues tasks through this app; importing it here makes
        # shared_task bind to it rather than to Celery's default (AMQP) app.
        from offgridperf import checks  # noqa: F401
        from offgridperf.celery import app  # noqa: F401
