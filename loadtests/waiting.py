"""Runs waiting for a worker. Worker liveness: each Celery worker writes a heartbeat row every few
seconds, so the dashboard and the CLI can tell "waiting for a worker" from "no worker alive on
that queue" without a broadcast over the broker (the embedded file-system broker has none). Who
consumes the run queue and which runs keep them busy, what the pages and the CLI say while a run
waits (behind which run, when every load generator is busy), and the reason given when it waits
too long (LOADTEST_QUEUE_TIMEOUT_S). One wording, used by the run page, the overview, their live
JSON, the CLI and the expiry in the lifecycle."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import dateformat, timezone

from loadtests.models import (
    LoadTestRun,
    RunShard,
    RunStatus,
    ShardStatus,
    WorkerHeartbeat,
)

RUN_TASK = "loadtests.tasks.execute_run"
WORKER_HEARTBEAT_S = 5
# Three missed heartbeats: a worker that is this quiet is taken for dead.
WORKER_STALE_S = 3 * WORKER_HEARTBEAT_S


# -- worker liveness --------------------------------------------------------------------------


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


# -- the run queue ------------------------------------------------------------------------------


def run_queue() -> str:
    """The queue that load-test runs are sent to (CELERY_TASK_ROUTES)."""
    route = settings.CELERY_TASK_ROUTES.get(RUN_TASK, {})
    return route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)


def queue_timeout_s() -> int:
    return settings.LOADTEST_QUEUE_TIMEOUT_S


def worker_command() -> str:
    """A load generator: a worker on the run queue alone, one load test at a time."""
    return f"celery -A offgridperf worker -Q {run_queue()} -c 1 -n loadgen@%h"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _runs(ids: tuple[int, ...]) -> str:
    """`run #3`, `runs #3 and #4`, `runs #3, #4 and #5`."""
    names = [f"#{pk}" for pk in ids]
    if len(names) == 1:
        return f"run {names[0]}"
    return f"runs {', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class QueueWorkers:
    """The workers alive on a queue, how many of them are running a load test, and which."""

    queue: str
    alive: int
    busy: int
    busy_with: tuple[int, ...] = ()

    @property
    def all_busy(self) -> bool:
        """Every live generator runs a load test: a queued run waits its turn."""
        return bool(self.alive) and self.busy == self.alive

    def _load(self) -> str:
        if self.busy == self.alive:
            return "busy"
        return f"{self.busy} busy" if self.busy else "idle"

    def _nobody(self, verb: str) -> str:
        start = f"start one with `{worker_command()}`"
        return f"no worker {verb} consuming the {self.queue} queue — {start}"

    def now(self) -> str:
        """As the pages say it while a run waits."""
        if not self.alive:
            return self._nobody("is")
        return f"{_plural(self.alive, 'worker')} alive on {self.queue} ({self._load()})"

    def then(self) -> str:
        """As the reason of a run that waited too long says it."""
        if not self.alive:
            return self._nobody("was")
        verb = "was" if self.alive == 1 else "were"
        text = f"{_plural(self.alive, 'worker')} {verb} alive on {self.queue} ({self._load()})"
        if self.busy < self.alive:
            # Alive, free and still not taking the run: its messages go somewhere else.
            text += (
                "; an idle worker that did not take the run may be using another broker "
                "(CELERY_BROKER_URL)"
            )
        return text


def queue_workers(queue: str | None = None) -> QueueWorkers:
    """Who consumes `queue` (default: the run queue), in one query.

    A worker is busy while a run it took (or a shard of one) is running: matched by its node
    name, or by its host for runs whose node was not recorded."""
    queue = queue or run_queue()
    cutoff = timezone.now() - timedelta(seconds=WORKER_STALE_S)
    running_there = LoadTestRun.objects.filter(status=RunStatus.RUNNING).filter(
        Q(worker_node=OuterRef("node")) | Q(worker_node="", worker_host=OuterRef("hostname"))
    )
    # A sharded run's generators are its shards' workers.
    shard_there = RunShard.objects.filter(
        worker_node=OuterRef("node"),
        status__in=(ShardStatus.QUEUED, ShardStatus.READY, ShardStatus.RUNNING),
        heartbeat_at__isnull=False,
        run__status=RunStatus.RUNNING,
    )
    rows = (
        WorkerHeartbeat.objects.filter(seen_at__gte=cutoff)
        .annotate(
            busy_with=Coalesce(
                Subquery(running_there.order_by("pk").values("pk")[:1]),
                Subquery(shard_there.order_by("run_id").values("run_id")[:1]),
                output_field=BigIntegerField(),
            )
        )
        .values_list("queues", "busy_with")
    )
    # Filtered here: JSON containment is not portable to the embedded SQLite database.
    on_queue = [busy_with for queues, busy_with in rows if queue in (queues or [])]
    busy_with = tuple(sorted({pk for pk in on_queue if pk is not None}))
    return QueueWorkers(
        queue=queue,
        alive=len(on_queue),
        busy=sum(1 for pk in on_queue if pk is not None),
        busy_with=busy_with,
    )


def last_freed_at() -> datetime | None:
    """When a load generator last became free: the latest end of a run a worker had taken."""
    ends = LoadTestRun.objects.filter(started_at__isnull=False).aggregate(last=Max("finished_at"))
    return ends["last"]


def waited_s(
    run: LoadTestRun, now: datetime | None = None, *, since: datetime | None = None
) -> float:
    """How long the run has waited, counted from `since` when that is later than its queueing."""
    start = max(run.created_at, since) if since else run.created_at
    return max(0.0, ((now or timezone.now()) - start).total_seconds())


def overdue(
    run: LoadTestRun, now: datetime | None = None, *, since: datetime | None = None
) -> bool:
    """True when a queued run has waited LOADTEST_QUEUE_TIMEOUT_S or longer (since `since`)."""
    return run.status == RunStatus.QUEUED and waited_s(run, now, since=since) >= queue_timeout_s()


def timeout_reason(workers: QueueWorkers) -> str:
    return (
        f"No worker took this run within {queue_timeout_s()} s (LOADTEST_QUEUE_TIMEOUT_S): "
        f"{workers.then()}."
    )


def waiting_state(run: LoadTestRun, workers: QueueWorkers) -> dict[str, Any] | None:
    """What the pages (and the CLI) show of a queued run; None when it is not queued."""
    if run.status != RunStatus.QUEUED or run.pk in workers.busy_with:
        # A generator busy with this very run took it after its status was read: it starts.
        return None
    now = timezone.now()
    timeout = queue_timeout_s()
    waited = waited_s(run, now)
    if workers.all_busy:
        # Its turn comes when a generator is free: no timeout runs meanwhile.
        return {
            "message": (
                f"Waiting for a load generator: busy with {_runs(workers.busy_with)}. "
                f"Queued {waited:.0f} s ago; it starts when a generator is free."
            ),
            "queue": workers.queue,
            "workers_alive": workers.alive,
            "workers_busy": workers.busy,
            "busy_with": list(workers.busy_with),
            "waited_s": round(waited, 1),
            "timeout_s": timeout,
            "gives_up_at": None,
            "gives_up_in_s": None,
        }
    gives_up_at = run.created_at + timedelta(seconds=timeout)
    left = max(0.0, timeout - waited)
    clock = dateformat.format(timezone.localtime(gives_up_at), "H:i:s")
    return {
        "message": (
            f"Waiting for a worker: {workers.now()}. Queued {waited:.0f} s ago; "
            f"gives up in {left:.0f} s (at {clock})."
        ),
        "queue": workers.queue,
        "workers_alive": workers.alive,
        "workers_busy": workers.busy,
        "busy_with": list(workers.busy_with),
        "waited_s": round(waited, 1),
        "timeout_s": timeout,
        "gives_up_at": gives_up_at.isoformat(),
        "gives_up_in_s": round(left, 1),
    }
