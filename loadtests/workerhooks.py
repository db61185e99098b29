"""Celery worker and beat hooks: worker heartbeats and housekeeping (see housekeeping.py)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import beat_init, celeryd_init, worker_ready, worker_shutdown
from django.utils import timezone

from loadtests import housekeeping, lifecycle, waiting

log = logging.getLogger(__name__)

_stop = threading.Event()


@celeryd_init.connect
def one_load_test_at_a_time(
    sender: Any = None, conf: Any = None, options: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """A worker that consumes only the run queue is a load generator: it runs one load test
    at a time (two would each distort the other's figures) unless `-c` says otherwise, and
    does not hold a second run in its prefetch buffer where a free generator could take it."""
    options = options or {}
    if conf is None or list(options.get("queues") or []) != [waiting.run_queue()]:
        return
    if not options.get("concurrency"):
        conf.worker_concurrency = 1
    conf.worker_prefetch_multiplier = 1


def _consumed(consumer: Any) -> list[str]:
    # Read at each heartbeat: a queue added or cancelled through remote control
    # (add_consumer / cancel_consumer) changes what the waiting pages may count on.
    task_consumer = consumer.task_consumer
    return [queue.name for queue in task_consumer.queues] if task_consumer else []


@worker_ready.connect
def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    node = sender.hostname
    started_at = timezone.now()
    # Whatever ran under this node name before is gone (a crash, a kill -9, a restart by
    # runall): its runs cannot be going on, so do not wait for them to go stale.
    try:
        reaped = lifecycle.reap_node_runs(node)
    except Exception:
        # The worker must still say it is alive, or no run would ever be sent to it; the
        # housekeeping below reaps those runs once their heartbeat is stale.
        log.exception("%s: the runs it left running could not be interrupted at start", node)
    else:
        if reaped:
            log.warning("%s: marked the runs it left running as interrupted: %s", node, reaped)
    waiting.record_heartbeat(node, _consumed(sender), started_at)
    housekeeping.start(
        _stop, also=lambda: waiting.record_heartbeat(node, _consumed(sender), started_at)
    )


@worker_shutdown.connect
def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    _stop.set()
    if sender is not None:
        waiting.forget(sender.hostname)


@beat_init.connect
def on_beat_init(sender: Any = None, **kwargs: Any) -> None:
    housekeeping.start(_stop)
