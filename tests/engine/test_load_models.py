from __future__ import annotations

import pytest

from loadtests.engine import IntervalSnapshot, Stage, run
from loadtests.engine.config import EngineConfig
from loadtests.engine.scheduler import ArrivalSchedule, Ramp
from stats.histogram import Histogram
from tests.engine.helpers import closed, open_, step


def collect(config: EngineConfig) -> tuple[object, list[IntervalSnapshot]]:
    snapshots: list[IntervalSnapshot] = []
    return run(config, sink=snapshots.append), snapshots


def test_arrivals_follow_a_constant_rate_and_a_ramp() -> None:
    constant = ArrivalSchedule(Ramp([], constant=200, duration_s=5))
    times = list(iter(constant.next, None))
    assert len(times) == 1000
    assert times[1] - times[0] == pytest.approx(0.005)
    ramp = Ramp([Stage(2, 100), Stage(2, 100), Stage(2, 0)], constant=0, duration_s=6)
    times = list(iter(ArrivalSchedule(ramp).next, None))
    per_second = [sum(1 for t in times if k <= t < k + 1) for k in range(6)]
    assert per_second == [25, 75, 100, 100, 75, 25]
    assert ramp.target_at(1.0) == 50 and ramp.target_at(5.5) == 25


def test_the_open_model_holds_its_rate(target: str) -> None:
    result, snapshots = collect(open_(target, rate_rps=200, duration_s=5))
    assert result.status == "completed"
    assert result.errors == 0
    # The schedule decides how many requests start, not the machine's speed: every planned
    # request is sent and answered, however noisy the machine (rates are benched, not tested).
    assert result.planned_requests == 1000
    assert result.requests == 1000
    # Achieved rate over the planned 5 s: within 2 % of the set rate.
    assert result.requests / 5 == pytest.approx(200, rel=0.02)
    assert len(snapshots) >= 5
    assert sum(s.requests for s in snapshots) == 1000
    assert all(s.target == 200 for s in snapshots[:5])
    assert result.health["target_rate"] == pytest.approx(200, rel=0.01)
    assert 0 < result.throughput_rps <= 200 * 1.05


def test_the_closed_model_paces_users_by_latency_plus_think_time(target: str) -> None:
    config = closed(
        target,
        step("/delay?ms=20"),
        users=10,
        think_time_min_s=0.08,
        think_time_max_s=0.08,
        duration_s=3,
    )
    result, snapshots = collect(config)
    # Each user: >= 20 ms response + 80 ms think, so at most one request per 0.1 s; a
    # closed model never outruns its users, however fast the target.
    assert 0 < result.requests <= 10 * (3 / 0.1 + 1)
    assert result.throughput_rps <= 10 / 0.1 * 1.05
    assert result.latency.min >= 20_000 * 0.95
    assert 20_000 <= result.latency.value_at_percentile(50) < 20_000 * 5
    # Closed model: latency is service time, except that a user's first request also waits
    # for its connection to open.
    moved = sum(
        abs(a - b) for a, b in zip(result.latency.counts, result.service.counts, strict=True)
    )
    assert moved <= 2 * 10
    assert all(s.active_users == 10 for s in snapshots)


def test_open_stages_ramp_the_rate(target: str) -> None:
    config = open_(target, rate_rps=0, stages=(Stage(2, 200), Stage(1, 200)), duration_s=3)
    result, snapshots = collect(config)
    # Each second's target is the ramp's rate at the middle of that second as it ran (about
    # 0.5, 1.5 and 2.5 s: 50, 150 and 200/s; a loaded machine ends a second a little late).
    middles = [min(s.start_offset_s + s.length_s / 2, 3.0) for s in snapshots[:3]]
    assert [s.target for s in snapshots[:3]] == pytest.approx(
        [min(middle, 2.0) * 100 for middle in middles], abs=2
    )
    assert middles == pytest.approx([0.5, 1.5, 2.5], abs=0.4)
    # Ramp 0 -> 200/s over 2 s (200 requests), then 1 s at 200/s.
    assert result.planned_requests == pytest.approx(400, abs=2)
    assert result.requests == result.planned_requests


def test_closed_stages_ramp_users_up_and_down(target: str) -> None:
    config = closed(
        target, step("/delay?ms=10"), users=0, think_time_min_s=0.05, think_time_max_s=0.05,
        stages=(Stage(2, 20), Stage(1, 20), Stage(1, 0)), duration_s=4,
    )  # fmt: skip
    result, snapshots = collect(config)
    users = [s.active_users for s in snapshots]
    assert users[0] < users[1] <= users[2] == 20 > users[3]

    def ramp(t: float) -> float:  # 0 -> 20 users over 2 s, 20 for 1 s, 20 -> 0 over 1 s
        return 10 * t if t < 2 else 20 if t < 3 else max(0.0, 20 - 20 * (t - 3))

    # Each second's target is the ramp's at the middle of that second as it ran (about 0.5,
    # 1.5, 2.5 and 3.5 s: 5, 15, 20 and 10 users; a loaded machine ends a second a little late).
    middles = [min(s.start_offset_s + s.length_s / 2, 4.0) for s in snapshots[:4]]
    assert [s.target for s in snapshots[:4]] == pytest.approx([ramp(m) for m in middles], abs=0.5)
    assert middles == pytest.approx([0.5, 1.5, 2.5, 3.5], abs=0.4)
    assert result.errors == 0


def test_interval_histograms_add_up_to_the_run(target: str) -> None:
    result, snapshots = collect(closed(target, users=2, duration_s=2))
    merged = Histogram()
    for snapshot in snapshots:
        merged.merge(Histogram.decode(snapshot.latency_histogram))
    assert merged == result.latency
    assert merged.total_count == result.requests == sum(s.requests for s in snapshots)
    assert result.duration_s == pytest.approx(sum(s.length_s for s in snapshots))
    assert [s.index for s in snapshots] == list(range(len(snapshots)))


def test_coordinated_omission_is_corrected_against_a_stalling_target(
    freezing_target: str,
) -> None:
    # Two connections: during a 1 s stall only two requests are on the wire; the rest wait
    # in the generator with their intended start times, as wrk2 does.
    config = open_(freezing_target, rate_rps=200, duration_s=5, max_connections=2, timeout_s=5)
    result, _ = collect(config)
    corrected_p99 = result.latency.value_at_percentile(99) / 1000
    service_p99 = result.service.value_at_percentile(99) / 1000
    assert result.errors == 0
    assert corrected_p99 >= 500
    # Service time never sees the queueing: it stays far below the corrected figure.
    assert service_p99 < corrected_p99 / 4
    assert result.health["late_starts"] > 50
