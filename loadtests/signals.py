"""Celery worker and beat hooks: worker heartbeats and housekeeping (see housekeeping.py)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown
from django.utils import timezone

from loadtests import execution, housekeeping, workers

log = logging.getLogger(__name__)

_stop = threading.Event()


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    node = sender.hostname
    queues = [queue.name for queue in sender.task_consumer.queues] if sender.task_consumer else []
    started_at = timezone.now()
    # Whatever ran under this node name before is gone (a crash, a kill -9, a restart by
    # runall): its runs cannot be going on, so do not wait for them to go stale.
    reaped = execution.reap_node_runs(node)
    if reaped:
        log.warning("%s: marked the runs it left running as interrupted: %s", node, reaped)
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
