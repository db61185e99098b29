"""Worker liveness: each Celery worker writes a heartbeat row every few seconds, so the dashboard
and the CLI can tell "waiting for a worker" from "no worker alive on that queue" without a
broadcast over the broker (the embedded file-system broker has none)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.utils import timezone

from loadtests.models import WorkerHeartbeat

WORKER_HEARTBEAT_S = 5
# Three missed heartbeats: a worker that is this quiet is taken for dead.
WORKER_STALE_S = 3 * WORKER_HEARTBEAT_S


def record_heartbeat(node: str, queues: Iterable[str], started_at: datetime) -> None:
    """Say that worker `node` (consuming `queues`) is alive now."""
    WorkerHeartbeat.objects.update_or_create(
        node=node,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": sorted(queues),
            "started_at": started_at,
            "seen_at": timezone.now(),
        },
    )


def forget(node: str) -> None:
    """A worker that shuts down cleanly says so at once."""
    WorkerHeartbeat.objects.filter(node=node).delete()


def alive_workers(queue: str | None = None) -> list[WorkerHeartbeat]:
    """Workers seen within WORKER_STALE_S, optionally only those consuming `queue`."""
    cutoff = timezone.now() - timedelta(seconds=WORKER_STALE_S)
    workers = list(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff))
    if queue is None:
        return workers
    return [worker for worker in workers if queue in worker.queues]
