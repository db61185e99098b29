"""A run on a worker: execution, live persistence of each second, the end of a run,
cancellation, queue expiry and reaping."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from loadtests import agentfigures, agenttags, documents, events, reports, secrets, waiting
from loadtests.engine import EngineConfig, IntervalSnapshot, RunResult
from loadtests.engine import run as run_engine
from loadtests.engine.histograms import Histogram
from loadtests.engine.report import ms
from loadtests.models import LoadTestRun, RunInterval, RunStatus
from loadtests.validators import host_is_allowed

log = logging.getLogger(__name__)

# A running run writes a heartbeat each second; ten missed ones and it is taken for dead (the
# housekeeping thread looks every few seconds: interrupted within 15 s of the last heartbeat).
HEARTBEAT_S = 1.0
HEARTBEAT_STALE_S = 10
CANCEL_POLL_S = 0.5

ProgressCallback = Callable[[LoadTestRun, IntervalSnapshot], None]
T = TypeVar("T")


def execute(
    run_id: int, *, progress: ProgressCallback | None = None, worker_node: str = ""
) -> LoadTestRun | None:
    """Run a queued run in this process; None when it was not queued (already taken).

    `worker_node` is the Celery node name of the worker running it (blank outside a worker):
    when that worker restarts under the same name, it interrupts the run at once.
    """
    now = timezone.now()
    claimed = LoadTestRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker_host=socket.gethostname(),
        worker_pid=os.getpid(),
        worker_node=worker_node,
    )
    if not claimed:
        log.info("run %s is not queued; not starting it again", run_id)
        return None
    events.send(events.run_started, run_id)
    try:
        return _execute_claimed(LoadTestRun.objects.get(pk=run_id), progress)
    finally:
        events.send(events.run_finished, run_id)


def _execute_claimed(run: LoadTestRun, progress: ProgressCallback | None) -> LoadTestRun:
    document = documents.upgrade(run.config)
    if not host_is_allowed(document["target_base_url"]):
        return _finish_error(run, "The target host is not in LOADTEST_ALLOWED_HOSTS.")
    problems = documents.config_problems(document)
    if problems:
        return _finish_error(run, documents.problems_text(documents.RunRefused(problems)))
    try:
        config = agenttags.tagged_config(documents.run_engine_config(document), run.pk, document)
    except documents.RunRefused as exc:
        return _finish_error(run, documents.problems_text(exc))
    try:
        result = _drive_engine(run, config, progress)
    except DatabaseOutage as exc:
        log.error("run %s: %s", run.pk, exc)
        return _interrupt_owned(run, str(exc))
    except Exception as exc:
        log.exception("run %s failed", run.pk)
        return _finish_error(run, f"{type(exc).__name__}: {exc}")
    agentfigures.settle(run.pk)  # the target's last seconds, before the run reads as ended
    return with_database(lambda: finalise(run, result))


def _interrupt_owned(run: LoadTestRun, cause: str) -> LoadTestRun:
    """End a run this worker had to stop as interrupted, with the seconds it stored, once the
    database answers (before the reaper, which waits for workers to report again after an
    outage; past OWNED_END_WAIT_S the reaper does it). No load is generated meanwhile."""
    try:
        with_database(lambda: _interrupt(run.pk, cause=cause), within_s=OWNED_END_WAIT_S)
        run.refresh_from_db()
    except (DatabaseOutage, *DATABASE_AWAY):
        log.warning("run %s: the database is still away; the reaper will end the run", run.pk)
    return run


def _drive_engine(
    run: LoadTestRun, config: EngineConfig, progress: ProgressCallback | None
) -> RunResult:
    """Run the engine on its own thread; persist each second here, where the ORM may be used."""
    started = timezone.now()
    next_beat = time.monotonic()

    def on_snapshot(snapshot: IntervalSnapshot) -> bool:
        nonlocal next_beat
        if store_interval(run, snapshot, started) is None:
            _log_reaped(run.pk)
            return False
        next_beat = time.monotonic() + HEARTBEAT_S  # storing it was a heartbeat
        agentfigures.collect_while_running(run.pk)
        if progress:
            progress(run, snapshot)
        return True

    def poll() -> str:
        nonlocal next_beat
        beat = time.monotonic() >= next_beat
        if beat:
            next_beat = time.monotonic() + HEARTBEAT_S
        stop = _stop_requested(run.pk, heartbeat=beat)
        if stop == "reaped":
            _log_reaped(run.pk)
            return ENDED
        return stop

    result, _ = drive_engine_thread(config, f"loadtest-run-{run.pk}", on_snapshot, poll)
    return result


# What a poll answers when the run ended elsewhere (reaped, or a shard failed): stop the
# engine and store nothing more.
ENDED = "ended"
# How long the engine may take to stop once cancelled (it stops within a second).
ENGINE_STOP_S = 10.0
# Through a database outage: how often to look whether it answers again, and how long a look
# may take (a direct connection: the pool's own reconnection backs off to tens of seconds).
OUTAGE_RETRY_S = 1.0
OUTAGE_PROBE_TIMEOUT_S = 2
# How long a worker that stopped a run's load for an outage waits to record why.
OWNED_END_WAIT_S = 300.0
# The errors of a database that is away for now (a restart, a failover, a cut network, a lock
# held too long on SQLite): what an outage raises, as opposed to a bug in our own code.
DATABASE_AWAY = (OperationalError, InterfaceError)


class DatabaseOutage(Exception):
    """The database stayed away longer than LOADTEST_DB_OUTAGE_BUFFER_S."""

    def __init__(self, away_s: float) -> None:
        bound = settings.LOADTEST_DB_OUTAGE_BUFFER_S
        super().__init__(
            f"The database did not answer for {away_s:.0f} s "
            f"(more than LOADTEST_DB_OUTAGE_BUFFER_S, {bound} s): the load was stopped"
        )


def database_answers() -> bool:
    """Whether the database takes a new connection now: a direct one with a short timeout,
    not the pool's, whose reconnection backs off."""
    if connection.vendor != "postgresql":
        return True  # an embedded file: no server to come back
    import psycopg

    params = {**connection.get_connection_params(), "connect_timeout": OUTAGE_PROBE_TIMEOUT_S}
    try:
        psycopg.connect(**params).close()
    except psycopg.Error:
        return False
    return True


def forget_connections() -> None:
    """Drop this thread's connection and this process's pool: after an outage every pooled
    connection is dead, and the pool would back off before making new ones."""
    with contextlib.suppress(DatabaseError):
        connection.close()
    close_pool = getattr(connection, "close_pool", None)
    if close_pool is not None:
        with contextlib.suppress(DatabaseError):
            close_pool()


class _Owner:
    """The storing side of a run: hands each second to `on_snapshot` and asks `poll` what to
    do, riding out a database outage shorter than LOADTEST_DB_OUTAGE_BUFFER_S with the seconds
    waiting here, in order, until the database answers again."""

    def __init__(
        self, on_snapshot: Callable[[IntervalSnapshot], bool], poll: Callable[[], str]
    ) -> None:
        self.on_snapshot = on_snapshot
        self.poll = poll
        self.pending: collections.deque[IntervalSnapshot] = collections.deque()
        self.ended = False
        self.away_since: float | None = None
        self.next_try = 0.0
        self.next_poll = time.monotonic()
        self.bound_s = settings.LOADTEST_DB_OUTAGE_BUFFER_S

    def step(self, snapshot: IntervalSnapshot | None) -> bool:
        """Take a second (or None); False once the engine must stop."""
        if self.ended:
            return False  # the run ended elsewhere: nothing more is stored
        if snapshot is not None:
            self.pending.append(snapshot)
        now = time.monotonic()
        if self.away_since is not None:
            if now - self.away_since > self.bound_s:
                raise DatabaseOutage(now - self.away_since)
            if now < self.next_try:
                return True
            if not database_answers():
                self.next_try = time.monotonic() + OUTAGE_RETRY_S
                return True
            forget_connections()
        try:
            stop = self._store_and_poll(now)
        except DATABASE_AWAY as exc:
            if self.away_since is None:
                self.away_since = now
                log.warning("the database is away (%s); keeping the run's seconds", exc)
            with contextlib.suppress(DatabaseError):
                connection.close()
            self.next_try = time.monotonic() + OUTAGE_RETRY_S
            return True
        if self.away_since is not None:
            log.warning("the database answers again after %.1f s", now - self.away_since)
            self.away_since = None
        return not stop

    def _store_and_poll(self, now: float) -> bool:
        while self.pending:
            if not self.on_snapshot(self.pending[0]):
                self.ended = True
                self.pending.clear()
                return True
            self.pending.popleft()
        if now >= self.next_poll:
            self.next_poll = now + CANCEL_POLL_S
            stop = self.poll()
            if stop:
                self.ended = stop == ENDED
                return True
        return False


def drive_engine_thread(
    config: EngineConfig,
    name: str,
    on_snapshot: Callable[[IntervalSnapshot], bool],
    poll: Callable[[], str],
) -> tuple[RunResult, bool]:
    """Run the engine on a thread of its own while this thread hands each second to
    `on_snapshot` (False: the run is no longer this worker's; stop and store nothing more) and,
    every CANCEL_POLL_S, asks `poll` whether to go on ("" ), cancel ("cancel") or stop because
    the run ended elsewhere (ENDED). The engine's result, and whether the run ended elsewhere.

    A database outage shorter than LOADTEST_DB_OUTAGE_BUFFER_S loses nothing (see _Owner);
    a longer one raises DatabaseOutage. Whatever ends this thread's part (an exception, a time
    limit, a worker shutting down), the engine is stopped before it returns or raises: no load
    goes on that nobody records.
    """
    snapshots: queue.Queue[IntervalSnapshot] = queue.Queue()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def engine_thread() -> None:
        try:
            outcome["result"] = run_engine(config, sink=snapshots.put, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc

    owner = _Owner(on_snapshot, poll)
    thread = threading.Thread(target=engine_thread, name=name, daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not snapshots.empty() or owner.pending:
            try:
                snapshot = snapshots.get(timeout=0.2)
            except queue.Empty:
                snapshot = None
            if not owner.step(snapshot):
                cancel.set()
    finally:
        if thread.is_alive():
            cancel.set()
            thread.join(timeout=ENGINE_STOP_S)
            if thread.is_alive():
                log.error("%s: the engine did not stop within %s s", name, ENGINE_STOP_S)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], owner.ended


def with_database(action: Callable[[], T], *, within_s: float | None = None) -> T:
    """`action()`, tried again through a database outage shorter than `within_s` (default
    LOADTEST_DB_OUTAGE_BUFFER_S: a run's end must not be lost to one either)."""
    bound_s = settings.LOADTEST_DB_OUTAGE_BUFFER_S if within_s is None else within_s
    away_since: float | None = None
    while True:
        try:
            return action()
        except DATABASE_AWAY:
            away_since = time.monotonic() if away_since is None else away_since
            with contextlib.suppress(DatabaseError):
                connection.close()
        while True:
            away_s = time.monotonic() - away_since
            if away_s > bound_s:
                raise DatabaseOutage(away_s)
            time.sleep(OUTAGE_RETRY_S)
            if database_answers():
                break
        forget_connections()


def _stop_requested(run_id: int, *, heartbeat: bool) -> str:
    """Why the run should stop: "cancel" (asked for), "reaped" (no longer `running`: taken for
    dead while this worker was paused, or reaped under its node name), or "" to go on. Writes
    the heartbeat when `heartbeat` is set."""
    running = LoadTestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    if heartbeat and not running.update(heartbeat_at=timezone.now()):
        return "reaped"
    flag = running.values_list("cancel_requested", flat=True).first()
    if flag is None:
        return "reaped"
    return "cancel" if flag else ""


def _log_reaped(run_id: int) -> None:
    # Its summary was made from the intervals stored so far: writing more would contradict it.
    log.warning("run %s was marked interrupted while this worker ran it; stopping", run_id)


def store_interval(
    run: LoadTestRun, snapshot: IntervalSnapshot, run_started: Any, *, shard: int = 0
) -> RunInterval | None:
    """Store one second of a running run (of its shard `shard`, for sharded runs); None,
    storing nothing, when it is no longer running."""
    service = Histogram.decode(snapshot.service_hist) if snapshot.requests else None
    with transaction.atomic():
        # The UPDATE locks the run's row first: the reaper (which locks it too) either sees
        # this interval in its summary, or this sees the run is no longer running.
        if not LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            requests=F("requests") + snapshot.requests,
            errors=F("errors") + snapshot.errors,
            iterations=F("iterations") + _iterations(snapshot)[0],
            iterations_failed=F("iterations_failed") + _iterations(snapshot)[1],
            heartbeat_at=timezone.now(),
        ):
            return None
        # Stored already when a commit went through but its answer was lost with the database:
        # storing it again after the outage would count its requests twice. Looked up after the
        # run's row lock, so that tables are always locked in the same order.
        stored = RunInterval.objects.filter(run=run, shard=shard, index=snapshot.index).first()
        if stored is not None:
            transaction.set_rollback(True)  # its figures were added when it was stored
            return stored
        return _create_interval(run, snapshot, run_started, service, shard)


def _iterations(snapshot: IntervalSnapshot) -> tuple[int, int, str]:
    # Requests-mode snapshots (and engines before flow mode) carry no iteration figures.
    return (
        getattr(snapshot, "iterations", 0) or 0,
        getattr(snapshot, "iterations_failed", 0) or 0,
        getattr(snapshot, "iteration_hist", "") or "",
    )


def _create_interval(
    run: LoadTestRun,
    snapshot: IntervalSnapshot,
    run_started: Any,
    service: Histogram | None,
    shard: int = 0,
) -> RunInterval:
    return RunInterval.objects.create(
        run=run,
        shard=shard,
        index=snapshot.index,
        started_at=run_started + timedelta(seconds=snapshot.start_offset_s),
        length_s=snapshot.length_s,
        requests=snapshot.requests,
        errors=snapshot.errors,
        achieved_rps=snapshot.achieved_rps,
        target=snapshot.target,
        active_users=snapshot.active_users,
        in_flight=snapshot.in_flight,
        in_flight_mean=getattr(snapshot, "in_flight_mean", None),
        in_flight_max=getattr(snapshot, "in_flight_max", None),
        late_starts=snapshot.late_starts,
        per_step=dict(snapshot.per_step or {}),
        latency_p50_ms=snapshot.p50_ms if snapshot.requests else None,
        latency_p95_ms=snapshot.p95_ms if snapshot.requests else None,
        latency_p99_ms=snapshot.p99_ms if snapshot.requests else None,
        latency_max_ms=snapshot.max_ms if snapshot.requests else None,
        service_p50_ms=ms(service.value_at_percentile(50)) if service else None,
        service_p95_ms=ms(service.value_at_percentile(95)) if service else None,
        service_p99_ms=ms(service.value_at_percentile(99)) if service else None,
        latency_histogram=snapshot.latency_hist if snapshot.requests else "",
        service_histogram=snapshot.service_hist if snapshot.requests else "",
        errors_by_class=dict(snapshot.errors_by_class),
        iterations=_iterations(snapshot)[0],
        iterations_failed=_iterations(snapshot)[1],
        iteration_histogram=_iterations(snapshot)[2],
        cpu_pct=snapshot.cpu_pct,
        loop_lag_ms=snapshot.loop_lag_ms,
    )


def _apply_summary(
    run: LoadTestRun,
    *,
    latency: Histogram,
    service: Histogram,
    requests: int,
    errors: int,
    duration_s: float,
) -> None:
    run.requests = requests
    run.errors = errors
    run.duration_s = round(duration_s, 3)
    run.throughput_rps = round(requests / duration_s, 3) if duration_s > 0 else 0.0
    run.error_rate_pct = round(100.0 * errors / requests, 4) if requests else 0.0
    for field, value in {
        **reports.histogram_summary(latency, "latency"),
        **reports.histogram_summary(service, "service"),
    }.items():
        setattr(run, field, value)
    run.latency_histogram = latency.encode() if latency.total_count else ""
    run.service_histogram = service.encode() if service.total_count else ""


def _apply_iterations(
    run: LoadTestRun, iteration: Histogram | None, iterations: int, failed: int
) -> None:
    run.iterations, run.iterations_failed = iterations, failed
    figures = reports.iteration_summary(iteration)
    for name in ("p50", "p95", "p99"):
        setattr(run, f"iteration_{name}_ms", figures.get(f"{name}_ms"))
    run.iteration_histogram = iteration.encode() if iteration and iteration.total_count else ""


def finalise(run: LoadTestRun, result: RunResult) -> LoadTestRun:
    run.refresh_from_db()
    if run.status != RunStatus.RUNNING:
        return run  # reaped while it ran: the recorded seconds' summary stands
    _apply_summary(
        run,
        latency=result.latency,
        service=result.service,
        requests=result.requests,
        errors=result.errors,
        duration_s=result.duration_s,
    )
    _apply_iterations(
        run,
        getattr(result, "iteration", None),
        getattr(result, "iterations", 0) or 0,
        getattr(result, "iterations_failed", 0) or 0,
    )
    # A target may echo a secret header into an error message: keep only the mask.
    secrets_shown = secrets.secret_values(run.config)
    run.errors_by_class = secrets.redacted_errors(_jsonable(result.errors_by_class), secrets_shown)
    run.steps_summary = agentfigures.with_step_figures(run.pk, _jsonable(result.per_step))
    run.health = _jsonable(result.health)
    run.valid = bool(result.health.get("valid", True))
    summary = {
        "requests": run.requests,
        "errors": run.errors,
        "latency_p95_ms": run.latency_p95_ms,
        "latency_p99_ms": run.latency_p99_ms,
        "error_rate_pct": run.error_rate_pct,
        "throughput_rps": run.throughput_rps,
        "iteration_p95_ms": run.iteration_p95_ms,
    }
    thresholds = documents.upgrade(run.config)["thresholds"]
    run.threshold_results = reports.evaluate_thresholds(thresholds, summary)
    thresholds_pass = all(item["passed"] for item in run.threshold_results)
    if result.status == "cancelled":
        run.status, run.passed = RunStatus.CANCELLED, None
        run.status_reason = result.reason or "Cancelled by request."
    elif result.status == "aborted":
        run.status, run.passed = RunStatus.ABORTED, False
        run.status_reason = result.reason
    else:
        run.passed = thresholds_pass
        run.status = RunStatus.PASSED if thresholds_pass else RunStatus.FAILED
        run.status_reason = reports.verdict_reason(run.threshold_results, run.requests)
    run.status_reason = secrets.redact(run.status_reason, secrets_shown)
    run.finished_at = timezone.now()
    return _save_if_running(run)


def _save_if_running(run: LoadTestRun) -> LoadTestRun:
    """Save a run's end unless it was reaped meanwhile (a late finalise must not overwrite
    `interrupted` and its summary of the recorded seconds)."""
    running = LoadTestRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING)
    with transaction.atomic():
        if running.exists():
            run.save()
            return run
    run.refresh_from_db()
    return run


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _finish_error(run: LoadTestRun, reason: str) -> LoadTestRun:
    LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.ERROR, status_reason=reason[:2000], finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


# -- cancellation and reaping ------------------------------------------------------------


def request_cancel(run: LoadTestRun) -> bool:
    """Cancel a queued run at once, or ask a running one to stop; False when it had ended."""
    now = timezone.now()
    if LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        status_reason="Cancelled before it started.",
    ):
        return True
    return bool(
        LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            cancel_requested=True
        )
    )


def expire_queued_run(run: LoadTestRun, *, workers: waiting.QueueWorkers | None = None) -> bool:
    """End `run` as error when it has waited LOADTEST_QUEUE_TIMEOUT_S for a worker; the reason
    says whether any worker was alive on the queue. A run behind other runs (every generator
    busy) waits its turn, and the time counts from when a generator was last freed. `run` is
    updated in place. Pass `workers` when the caller has already looked them up."""
    if not waiting.overdue(run):
        return False
    workers = workers or waiting.queue_workers()
    if workers.all_busy:
        return False  # behind another run: it waits its turn, however long that run lasts
    # A generator that has just become free is about to take it: the wait counts from then.
    if not waiting.overdue(run, since=waiting.last_freed_at()):
        return False
    reason = waiting.timeout_reason(workers)
    now = timezone.now()
    # Conditional, like execute's claim: of a worker taking the run and this, exactly one wins.
    if not LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.ERROR, status_reason=reason, finished_at=now
    ):
        run.refresh_from_db()
        return False
    run.status, run.status_reason, run.finished_at = RunStatus.ERROR, reason, now
    return True


def expire_queued_runs() -> list[int]:
    """End every run that waited LOADTEST_QUEUE_TIMEOUT_S for a worker as error (housekeeping);
    one query when none has."""
    cutoff = timezone.now() - timedelta(seconds=waiting.queue_timeout_s())
    overdue = list(
        LoadTestRun.objects.filter(status=RunStatus.QUEUED, created_at__lte=cutoff).only(
            "pk", "status", "created_at"
        )
    )
    if not overdue:
        return []
    workers = waiting.queue_workers()
    return [run.pk for run in overdue if expire_queued_run(run, workers=workers)]


def reap_stale_runs(*, stale_after_s: float = HEARTBEAT_STALE_S) -> list[int]:
    """Mark running runs whose worker stopped reporting as interrupted, keeping their data."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    candidates = LoadTestRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    return [
        run_id
        for run_id in candidates.values_list("pk", flat=True)
        if _interrupt(run_id, stale_before=cutoff)
    ]


def reap_node_runs(node: str) -> list[int]:
    """Interrupt at once the runs worker `node` left `running`: called as that worker starts,
    when whatever ran them under this name is gone (Celery node names are unique)."""
    if not node:
        return []
    from loadtests import shards  # here: shards builds on this module

    # A sharded run goes by its shards' nodes: the run's own node is only the first shard's.
    candidates = LoadTestRun.objects.filter(status=RunStatus.RUNNING, worker_node=node, shards=1)
    reaped = [run_id for run_id in candidates.values_list("pk", flat=True) if _interrupt(run_id)]
    return reaped + shards.reap_node_shards(node)


def _interrupt(run_id: int, *, stale_before: Any = None, cause: str = "") -> bool:
    """Mark one running run interrupted, its summary made of the seconds it recorded. With
    `stale_before`, only if its heartbeat is still older than that: under the row lock, so a
    run that has just reported is never reaped. `cause` says why, when its worker knows."""
    with transaction.atomic():
        run = LoadTestRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return False
        if stale_before is not None and run.heartbeat_at and run.heartbeat_at >= stale_before:
            return False
        recorded = _summarise_recorded(run)
        if not cause and stale_before is None:
            cause = f"The worker {run.worker_node} restarted and found the run still running"
        elif not cause:
            cause = f"The worker ({run.worker_host} pid {run.worker_pid}) stopped reporting"
        run.status = RunStatus.INTERRUPTED
        run.status_reason = f"{cause}; the summary covers the {recorded} seconds recorded."
        run.finished_at = timezone.now()
        run.save()
    return True


def _summarise_recorded(run: LoadTestRun) -> int:
    """Set a run's summary from its stored intervals; returns how many there are."""
    intervals = list(run.intervals.all())
    latency, service = reports.merged_histograms(intervals)
    _apply_summary(
        run,
        latency=latency,
        service=service,
        requests=sum(i.requests for i in intervals),
        errors=sum(i.errors for i in intervals),
        duration_s=sum(i.length_s for i in intervals),
    )
    _apply_iterations(
        run,
        reports.merged_iterations(intervals),
        sum(i.iterations for i in intervals),
        sum(i.iterations_failed for i in intervals),
    )
    run.errors_by_class = reports.merged_errors(intervals)
    return len(intervals)
