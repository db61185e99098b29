"""Celery worker and beat hooks: worker heartbeats and housekeeping (see housekeeping.py)."""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown
from django.utils import timezone

from loadtests import housekeeping, workers

_stop = threading.Event()


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    node = sender.hostname
    queues = [queue.name for queue in sender.task_consumer.queues] if sender.task_consumer else []
    started_at = timezone.now()
    workers.record_heartbeat(node, queues, started_at)
    housekeeping.start(_stop, also=lambda: workers.record_heartbeat(node, queues, started_at))


@worker_shutdown.connect
def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    _stop.set()
    if sender is not None:
        workers.forget(sender.hostname)


@beat_init.connect
def on_beat_init(sender: Any = None, **kwargs: Any) -> None:
    housekeeping.start(_stop)
