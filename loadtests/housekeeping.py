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

log = logging.getLogger(__name__)

# With execution.HEARTBEAT_STALE_S (10 s), a run is interrupted at most 14 s after its last
# heartbeat: the 15 s the product promises.
HOUSEKEEPING_INTERVAL_S = 4.0


def jobs() -> list[Callable[[], object]]:
    from loadtests import execution, shards

    return [execution.reap_stale_runs, shards.reap_stale_shards, execution.expire_queued_runs]


def run_once() -> dict[str, object]:
    """Run every job once; a failing job is logged and does not stop the others."""
    results: dict[str, object] = {}
    for job in jobs():
        try:
            results[job.__name__] = job()
        except Exception:  # noqa: BLE001 - the database may be briefly away; try next tick
            log.exception("housekeeping job %s failed", job.__name__)
        finally:
            close_old_connections()
    return results


def start(
    stop: threading.Event,
    *,
    every_s: float = HOUSEKEEPING_INTERVAL_S,
    also: Callable[[], None] | None = None,
) -> threading.Thread:
    """Start the housekeeping thread; `also` runs first on each tick (e.g. a worker heartbeat)."""

    def loop() -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            if also is not None:
                try:
                    also()
                except Exception:  # noqa: BLE001
                    log.exception("housekeeping: heartbeat failed")
            run_once()
            # At a fixed rate, not `every_s` after a slow tick: the reap promise counts on it.
            next_tick = max(next_tick + every_s, time.monotonic())
            stop.wait(next_tick - time.monotonic())

    thread = threading.Thread(target=loop, name="offgridperf-housekeeping", daemon=True)
    thread.start()
    return thread
