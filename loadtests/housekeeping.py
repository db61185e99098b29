"""Periodic upkeep of runs that needs neither the broker nor a free worker slot: every worker's
main process (and beat) runs these jobs on a thread every few seconds, so a run is reaped while
Redis is down or while every pool process is busy with a load test. Each job is safe to run
concurrently from several processes (claims are conditional UPDATEs or row locks)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

from loadtests import lifecycle

log = logging.getLogger(__name__)

# With lifecycle.HEARTBEAT_STALE_S (10 s), a run is interrupted at most 14 s after its last
# heartbeat: the 15 s the product promises.
HOUSEKEEPING_INTERVAL_S = 4.0


def reapers() -> list[Callable[[], object]]:
    return [lifecycle.reap_stale_runs]


def jobs() -> list[Callable[[], object]]:
    return [*reapers(), lifecycle.expire_queued_runs]


class DatabaseWatch:
    """How this process's housekeeping saw the database: away, or back after a gap.

    After an outage every running run's heartbeat looks stale at once, though its worker was
    only waiting for the database too (the lifecycle keeps a run's seconds through an outage):
    reaping waits until the workers had HEARTBEAT_STALE_S to report again. A gap counts too:
    a tick that waited through the whole outage for a connection saw no error, only time lost.
    """

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self.away = False
        self.last_answer: float | None = None
        self.back_at: float | None = None

    def failed(self) -> None:
        self.away = True

    def answered(self) -> None:
        now = time.monotonic()
        silent = self.last_answer is not None and now - self.last_answer > self.gap_s
        if self.away or silent:
            self.back_at = now
        self.away, self.last_answer = False, now

    def may_reap(self) -> bool:
        if self.away:
            return False
        stale_s = lifecycle.HEARTBEAT_STALE_S
        return self.back_at is None or time.monotonic() - self.back_at >= stale_s


def _watched(job: Callable[[], object], watch: DatabaseWatch | None) -> tuple[bool, object]:
    """Run one job; (whether it ran to the end, its result). Logged when it fails."""
    try:
        result = job()
    except lifecycle.DATABASE_AWAY:
        if watch is not None:
            watch.failed()
        log.warning("housekeeping: %s: the database is away", job.__name__)
        return False, None
    except Exception:  # noqa: BLE001 - one job's bug must not stop the others
        log.exception("housekeeping job %s failed", job.__name__)
        return False, None
    finally:
        close_old_connections()
    if watch is not None:
        watch.answered()
    return True, result


def run_once(watch: DatabaseWatch | None = None) -> dict[str, object]:
    """Run every job once; a failing job is logged and does not stop the others. With the
    housekeeping thread's `watch`, reaping is held back after the database was away."""
    results: dict[str, object] = {}
    held_back = reapers()
    for job in jobs():
        if watch is not None and job in held_back and not watch.may_reap():
            continue
        ran, result = _watched(job, watch)
        if ran:
            results[job.__name__] = result
    return results


def start(
    stop: threading.Event,
    *,
    every_s: float = HOUSEKEEPING_INTERVAL_S,
    also: Callable[[], None] | None = None,
) -> threading.Thread:
    """Start the housekeeping thread; `also` runs first on each tick (e.g. a worker heartbeat)."""
    # Two ticks without an answer: the database was away, even if no query said so.
    watch = DatabaseWatch(gap_s=2 * every_s)

    def loop() -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            if also is not None:
                _watched(also, watch)
            run_once(watch)
            # At a fixed rate, not `every_s` after a slow tick: the reap promise counts on it.
            next_tick = max(next_tick + every_s, time.monotonic())
            stop.wait(next_tick - time.monotonic())

    thread = threading.Thread(target=loop, name="offgridperf-housekeeping", daemon=True)
    thread.start()
    return thread
