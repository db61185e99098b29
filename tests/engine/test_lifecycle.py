from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from loadtests.engine import IntervalSnapshot, run
from tests.engine.helpers import closed, open_, step


def test_cancel_ends_the_run_within_a_second_and_keeps_its_data(target: str) -> None:
    snapshots: list[IntervalSnapshot] = []
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    started = time.monotonic()
    timer.start()
    result = run(closed(target, users=2, duration_s=30), sink=snapshots.append, cancel=cancel)
    ended = time.monotonic()
    timer.join()
    assert result.status == "cancelled"
    # Cancellation is checked at least once a second; the bound leaves room for a busy
    # machine while staying far below the 30 s the run was asked to last.
    assert ended - started < 1.5 + 3.0
    assert result.requests > 0
    assert result.requests == sum(s.requests for s in snapshots)
    assert 1.0 <= result.duration_s < 1.5 + 3.0
    # Whole seconds, then the part-second before the cancel: nothing recorded is lost.
    assert len(snapshots) == math.ceil(result.duration_s - 1e-9)
    assert result.duration_s == pytest.approx(sum(s.length_s for s in snapshots))


def test_a_cancel_before_the_start_ends_at_once(target: str) -> None:
    cancel = threading.Event()
    cancel.set()
    result = run(open_(target, duration_s=30), cancel=cancel)
    assert result.status == "cancelled" and result.requests == 0


def test_the_abort_threshold_stops_a_failing_run_early(target: str) -> None:
    config = closed(target, step("/status/500"), users=2, duration_s=30, abort_error_rate_pct=5.0)
    started = time.monotonic()
    result = run(config)
    assert result.status == "aborted"
    assert time.monotonic() - started < 15  # of the 30 s asked for
    assert "100.0%" in result.reason and "5% abort threshold" in result.reason


def test_the_abort_threshold_needs_enough_requests(target: str) -> None:
    config = open_(
        target, step("/status/500"), rate_rps=5, duration_s=2, abort_error_rate_pct=5.0,
        abort_min_requests=20,
    )  # fmt: skip
    result = run(config)
    assert result.status == "completed"
    assert result.errors == result.requests == 10


def test_the_sink_runs_on_its_own_thread_without_an_event_loop(target: str) -> None:
    seen: list[tuple[int, bool]] = []

    def sink(snapshot: IntervalSnapshot) -> None:
        try:
            asyncio.get_running_loop()
            has_loop = True
        except RuntimeError:
            has_loop = False
        seen.append((threading.get_ident(), has_loop))
        time.sleep(0.3)  # a slow database write must not hold up the load

    result = run(open_(target, rate_rps=100, duration_s=2), sink=sink)
    assert len(seen) == 2
    assert all(ident != threading.get_ident() and not has_loop for ident, has_loop in seen)
    assert result.requests == result.planned_requests == 200


def test_a_failing_sink_stops_the_run_and_raises(target: str) -> None:
    def sink(snapshot: IntervalSnapshot) -> None:
        raise RuntimeError("database is gone")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="database is gone"):
        run(closed(target, duration_s=30), sink=sink)
    assert time.monotonic() - started < 15  # of the 30 s asked for


def test_snapshots_carry_generator_health(target: str) -> None:
    snapshots: list[IntervalSnapshot] = []
    run(open_(target, rate_rps=50, duration_s=1), sink=snapshots.append)
    (snapshot,) = snapshots
    data = snapshot.to_dict()
    for key in (
        "cpu_pct",
        "loop_lag_ms",
        "in_flight",
        "late_starts",
        "per_step",
        "latency_histogram",
    ):
        assert key in data
    assert data["per_step"] == {"ok": {"requests": 50, "errors": 0}}
    assert (
        0
        < snapshot.latency_p50_ms
        <= snapshot.latency_p95_ms
        <= snapshot.latency_p99_ms
        <= snapshot.latency_max_ms
    )


def test_snapshots_carry_the_seconds_mean_and_peak_in_flight(target: str) -> None:
    # Two requests a second that each take 200 ms: read once a second, in flight is 0 or 1;
    # sampled every 50 ms, the second's mean is about 0.4 and its peak 1.
    snapshots: list[IntervalSnapshot] = []
    run(open_(target, step("/delay?ms=200"), rate_rps=2, duration_s=2), sink=snapshots.append)
    assert len(snapshots) == 2
    for snapshot in snapshots:
        assert snapshot.in_flight_max == 1
        assert 0.0 < snapshot.in_flight_mean < 1.0
