"""The storing side of a run owns its load: whatever ends it (an exception while storing or
polling, a worker shutting down), the engine stops within a second, and a second stored twice
(its commit went through but the answer was lost with the database) counts once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from loadtests import lifecycle, services
from loadtests.engine import EngineConfig, IntervalSnapshot
from loadtests.engine.config import OPEN, Step
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from stats.histogram import Histogram
from tests.loadtests.counting_target import CountingTarget

# The engine stops within a second of a cancel; this much more for a loaded machine.
STOP_MARGIN_S = 1.5


@pytest.fixture
def target() -> Iterator[CountingTarget]:
    with CountingTarget() as served:
        yield served


def open_config(base_url: str) -> EngineConfig:
    return EngineConfig(
        target_base_url=base_url,
        steps=(Step(name="ok", method="GET", path="/ok"),),
        load_model=OPEN,
        rate_rps=40,
        duration_s=30,
        timeout_s=2,
    )


class Crash(Exception):
    pass


@pytest.mark.parametrize(
    ("where", "error"),
    [("storing", Crash), ("polling", Crash), ("polling", SystemExit)],
    ids=["a crash while storing", "a crash while polling", "a worker shutting down"],
)
def test_the_load_stops_when_the_storing_side_fails(
    target: CountingTarget, where: str, error: type[BaseException]
) -> None:
    failed_at: list[float] = []
    seconds: list[int] = []

    def fail() -> None:
        failed_at.append(time.time())
        raise error("the run's owner failed")

    def on_snapshot(snapshot: IntervalSnapshot) -> bool:
        seconds.append(snapshot.index)
        if where == "storing" and len(seconds) == 2:
            fail()
        return True

    def poll() -> str:
        if where == "polling" and len(seconds) == 2:
            fail()
        return ""

    started = time.monotonic()
    with pytest.raises(error):
        lifecycle.drive_engine_thread(open_config(target.url), "crash", on_snapshot, poll)
    assert time.monotonic() - started < 10  # not the planned 30 s
    assert target.count() > 0
    time.sleep(STOP_MARGIN_S + 0.5)
    assert target.count_after(failed_at[0] + STOP_MARGIN_S) == 0


@pytest.mark.django_db
def test_a_second_stored_twice_counts_once(definition: LoadTestDefinition) -> None:
    run = services.create_run(definition)
    LoadTestRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    latencies = Histogram()
    for value_us in (1_000, 2_000, 2_000, 2_000, 2_000):
        latencies.record(value_us)
    snapshot = IntervalSnapshot(
        index=0, start_offset_s=0, length_s=1, requests=5, errors=1, errors_by_class={},
        error_samples={}, latency_histogram=latencies.encode(),
        service_histogram=latencies.encode(), latency_p50_ms=2, latency_p95_ms=2,
        latency_p99_ms=2, latency_max_ms=2, throughput_rps=5, target=5, active_users=1,
        in_flight=0, late_starts=0, cpu_pct=1, loop_lag_ms=0, per_step={},
    )  # fmt: skip
    started = timezone.now()
    first = lifecycle.store_interval(run, snapshot, started)
    again = lifecycle.store_interval(run, snapshot, started)
    assert first is not None and again is not None and again.pk == first.pk
    run.refresh_from_db()
    assert (run.requests, run.errors, run.intervals.count()) == (5, 1, 1)
