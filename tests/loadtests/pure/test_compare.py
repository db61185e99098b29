"""Comparing two runs (deltas, noise, verdict), tested with plain data."""

from __future__ import annotations

from loadtests import compare


def test_it_computes_deltas_with_direction() -> None:
    a = {"latency_p95_ms": 100.0, "throughput_rps": 50.0, "error_rate_pct": 0.0}
    b = {"latency_p95_ms": 120.0, "throughput_rps": 55.0, "error_rate_pct": 0.0}
    rows = {row["key"]: row for row in compare.deltas(a, b)}
    assert rows["latency_p95_ms"]["change"] == 20.0
    assert rows["latency_p95_ms"]["change_pct"] == 20.0
    assert rows["latency_p95_ms"]["better"] is False
    assert rows["throughput_rps"]["better"] is True
    assert rows["error_rate_pct"]["better"] is None
    assert rows["latency_p50_ms"]["change"] is None


def test_it_needs_three_runs_to_measure_noise() -> None:
    assert compare.noise([10.0, None, 12.0]) is None
    assert compare.noise([10.0, 12.0, 14.0]) == 1.633


def test_the_verdict_flags_a_p95_regression_beyond_10_percent_and_the_noise() -> None:
    verdict = compare.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 115.0}, run_noise=2.0)
    assert verdict.outcome == "regression"
    assert "p95 worse by 15.0 ms" in verdict.reasons[0]


def test_the_verdict_sees_no_change_within_the_noise() -> None:
    # 15% worse, but the runs usually wander by 10 ms: 2 sigma = 20 ms.
    verdict = compare.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 115.0}, run_noise=10.0)
    assert verdict.outcome == "no significant change"


def test_the_verdict_sees_an_improvement_and_an_error_rate_regression() -> None:
    better = compare.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 80.0}, None)
    assert better.outcome == "improvement"
    errors = compare.verdict(
        {"latency_p95_ms": 100.0, "error_rate_pct": 0.1},
        {"latency_p95_ms": 80.0, "error_rate_pct": 2.5},
        None,
    )
    assert errors.outcome == "regression"
    assert "Error rate up by 2.40" in errors.reasons[0]


def test_the_verdict_refuses_runs_without_latency() -> None:
    verdict = compare.verdict({"latency_p95_ms": None}, {"latency_p95_ms": 5.0}, None)
    assert verdict.outcome == "not comparable"
    assert "10%" in compare.VERDICT_RULE
