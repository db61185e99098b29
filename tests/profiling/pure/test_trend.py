from __future__ import annotations

import math
import random
import re

import pytest

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
    # The rise ends at 10 s, found rather than assumed (the fixed share would cut at 9.9 s).
    assert fitted.warmup_s == 10.0
    assert fitted.points == 90
    assert fitted.reason.startswith("warm-up of 50.0 MB over 10 s, then flat")


def test_it_needs_a_few_samples_and_says_so() -> None:
    fitted = trend.fit([0.0, 1.0], [1.0, 2.0])
    assert fitted.verdict == "inconclusive"
    assert "at least 5" in fitted.reason
    assert fitted.as_dict()["slope_mb_per_min"] is None
    assert math.isnan(fitted.slope_mb_per_min)


def test_it_gives_the_slope_per_thousand_requests() -> None:
    assert trend.per_thousand_requests(60.0, 1000.0) == 1.0
    assert trend.per_thousand_requests(60.0, 0.0) is None


def warm_up(seconds: float, *, rise_mb: float, tau_s: float, step_s: float = 0.1) -> tuple:
    """RSS rising by `rise_mb` towards a plateau (time constant `tau_s`), with 20 kB of noise."""
    rng = random.Random(11)
    times = [i * step_s for i in range(int(seconds / step_s))]
    values = [
        200 * MB + rise_mb * MB * (1 - math.exp(-t / tau_s)) + rng.gauss(0, 20_000) for t in times
    ]
    return times, values


def test_an_eight_second_warm_up_is_inconclusive_and_says_the_window_is_too_short() -> None:
    times, values = warm_up(8, rise_mb=3, tau_s=20)
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.slope_mb_per_min > 1.0  # the old rule called this a leak
    assert fitted.verdict == "inconclusive"
    assert "cover 8.0 s" in fitted.reason and f"under {trend.MIN_DURATION_S:g} s" in fitted.reason
    assert fitted.duration_s == 8.0


def test_steady_linear_growth_over_a_long_window_is_a_leak() -> None:
    times, values = sawtooth(300, slope_mb_per_min=6)
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "leak", fitted.reason
    assert fitted.lower_mb_per_min > 1.0
    assert "still over the last 50%" in fitted.reason


def test_growth_that_stops_is_a_warm_up_and_not_a_leak() -> None:
    rng = random.Random(5)
    times = [i * 0.5 for i in range(240)]  # two minutes
    # 12 MB over the first 30 s, flat afterwards.
    values = [200 * MB + min(t, 30.0) * 0.4 * MB + rng.gauss(0, 50_000) for t in times]
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "stable"
    found = re.match(r"warm-up of ([\d.]+) MB over (\d+) s, then flat", fitted.reason)
    assert found, fitted.reason
    assert float(found[1]) == pytest.approx(12.0, abs=0.3) and found[2] == "30"
    assert fitted.warmup_s == pytest.approx(30.0, abs=1.0)
    band = trend.stable_band(1.0)
    assert -band <= fitted.lower_mb_per_min and fitted.upper_mb_per_min <= band


def test_a_curved_warm_up_that_levels_off_is_never_a_leak() -> None:
    times, values = warm_up(180, rise_mb=20, tau_s=15)
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict != "leak", fitted.reason
    assert fitted.reason.startswith("warm-up of"), fitted.reason


def test_growth_too_small_against_its_noise_is_inconclusive() -> None:
    rng = random.Random(2)
    times = [i * 0.05 for i in range(2400)]  # two minutes at 20 Hz
    # 4 MB/min under a 3 s GC sawtooth of 30 MB: the samples agree, the window does not.
    values = [
        100 * MB + 4 * MB * t / 60 + (t % 3.0) / 3.0 * 30 * MB + rng.random() * 10_000
        for t in times
    ]
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.verdict == "inconclusive", fitted.reason
    assert "the noise" in fitted.reason and "too little to tell a leak" in fitted.reason


@pytest.mark.parametrize("slope_mb_per_min", [0.05, 0.43])
def test_a_verdict_never_contradicts_its_interval(slope_mb_per_min: float) -> None:
    rng = random.Random(4)
    times = [i * 0.1 for i in range(6000)]  # ten minutes
    values = [100 * MB + slope_mb_per_min * MB * t / 60 + rng.gauss(0, 30_000) for t in times]
    fitted = trend.fit(times, values, threshold_mb_per_min=1.0)
    assert fitted.lower_mb_per_min > 0  # the interval excludes zero in both cases
    band = trend.stable_band(1.0)
    if slope_mb_per_min < band:
        assert fitted.verdict == "stable"
        assert f"within ±{band:g} MB/min" in fitted.reason
    else:
        assert fitted.verdict == "inconclusive"
        assert "neither within" in fitted.reason
    if fitted.verdict == "stable":
        assert -band <= fitted.lower_mb_per_min and fitted.upper_mb_per_min <= band
    if fitted.verdict == "leak":
        assert fitted.lower_mb_per_min > fitted.threshold_mb_per_min


def test_the_printed_rules_come_from_the_constants() -> None:
    text = " ".join(trend.rules(2.0))
    assert f"{trend.MIN_DURATION_S:g} s" in text
    assert "above 2 MB/min" in text and "±0.5 MB/min" in text
    assert f"{trend.GROWTH_NOISE_RATIO:g}× the noise" in text
