from __future__ import annotations

import math
import random

from profiling import trend

MB = 1_000_000


def sawtooth(seconds: int, slope_mb_per_min: float, *, step_s: float = 0.1) -> tuple[list, list]:
    """RSS that climbs 5 MB between collections and falls back, on top of a steady drift."""
    rng = random.Random(7)
    times, values = [], []
    for i in range(int(seconds / step_s)):
        t = i * step_s
        garbage = (t % 3.0) / 3.0 * 5 * MB
        values.append(200 * MB + slope_mb_per_min * MB * t / 60 + garbage + rng.random() * 50_000)
        times.append(t)
    return times, values


def test_it_calls_a_steady_climb_a_leak() -> None:
    times, values = sawtooth(60, slope_mb_per_min=60)
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "leak"
    assert 50 < fitted.robust_slope_mb_per_min < 70
    assert fitted.lower_mb_per_min > 1.0


def test_it_calls_a_gc_sawtooth_without_drift_stable() -> None:
    times, values = sawtooth(120, slope_mb_per_min=0)
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "stable"
    assert fitted.upper_mb_per_min < 1.0


def test_it_is_inconclusive_when_the_interval_straddles_the_threshold() -> None:
    rng = random.Random(3)
    times = [float(t) for t in range(600)]
    # Ten minutes drifting at exactly the threshold, 1 MB/min, under 3 MB of noise.
    values = [100 * MB + t * MB / 60 + rng.gauss(0, 3 * MB) for t in times]
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "inconclusive"
    assert fitted.lower_mb_per_min < 1.0 < fitted.upper_mb_per_min


def test_it_leaves_the_warm_up_out_of_the_fit() -> None:
    times = [float(t) for t in range(100)]
    # A start-up jump of 50 MB in the first 10 s, flat afterwards.
    values = [150 * MB if t >= 10 else 100 * MB + 5 * MB * t for t in times]
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0, warmup_fraction=0.1)
    assert fitted.verdict == "stable"
    assert fitted.warmup_s == 9.9
    assert fitted.points == 90


def test_it_needs_a_few_samples_and_says_so() -> None:
    fitted = trend.fit([0.0, 1.0], [1.0, 2.0])
    assert fitted.verdict == "inconclusive"
    assert "at least 5" in fitted.reason
    assert fitted.as_dict()["slope_mb_per_min"] is None
    assert math.isnan(fitted.slope_mb_per_min)


def test_it_gives_the_slope_per_thousand_requests() -> None:
    assert trend.per_thousand_requests(60.0, 1000.0) == 1.0
    assert trend.per_thousand_requests(60.0, 0.0) is None
