"""The dashboard's pure computation, tested with plain data."""

from __future__ import annotations

from loadtests import charts


def test_it_leaves_short_series_as_they_are() -> None:
    result = charts.downsample([0, 1, 2], {"p95": [5.0, None, 7.0]}, max_points=10)
    assert result["x"] == [0, 1, 2]
    assert result["downsampled"] is False
    assert result["series"]["p95"] == {
        "mean": [5.0, None, 7.0],
        "min": [5.0, None, 7.0],
        "max": [5.0, None, 7.0],
    }


def test_it_downsamples_an_hour_to_600_points_keeping_a_one_second_spike() -> None:
    x = list(range(3600))
    values: list[float | None] = [10.0] * 3600
    values[1234] = 900.0
    values[2000] = None  # a second without requests
    result = charts.downsample(x, {"p99": values})
    series = result["series"]["p99"]
    assert result["downsampled"] is True
    assert len(result["x"]) == len(series["mean"]) == 600
    assert max(series["max"]) == 900.0
    assert min(v for v in series["min"] if v is not None) == 10.0
    assert result["x"][0] == 0 and result["x"][-1] == 3594


def test_it_splits_buckets_without_gaps_or_overlap() -> None:
    bounds = charts.bucket_bounds(1001, 600)
    assert len(bounds) == 600
    assert bounds[0][0] == 0 and bounds[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert charts.bucket_bounds(0) == []


def test_it_places_percentiles_on_the_hdrhistogram_axis() -> None:
    assert charts.spectrum_x(0) == 0
    assert charts.spectrum_x(90) == 1
    assert charts.spectrum_x(99.9) == 3
    assert charts.spectrum_x(100) == 6
    points = charts.spectrum_points([(50.0, 2000), (99.0, 9500), (100.0, 12000)])
    assert points == [
        {"x": 0.301, "y": 2.0, "p": 50.0},
        {"x": 2.0, "y": 9.5, "p": 99.0},
        {"x": 6.0, "y": 12.0, "p": 100.0},
    ]


def test_it_clamps_progress() -> None:
    assert charts.progress(None, 60) == 0
    assert charts.progress(30, 60) == 50
    assert charts.progress(90, 60) == 100
    assert charts.progress(5, 0) == 0


def test_it_computes_deltas_with_direction() -> None:
    a = {"latency_p95_ms": 100.0, "throughput_rps": 50.0, "error_rate_pct": 0.0}
    b = {"latency_p95_ms": 120.0, "throughput_rps": 55.0, "error_rate_pct": 0.0}
    rows = {row["key"]: row for row in charts.deltas(a, b)}
    assert rows["latency_p95_ms"]["change"] == 20.0
    assert rows["latency_p95_ms"]["change_pct"] == 20.0
    assert rows["latency_p95_ms"]["better"] is False
    assert rows["throughput_rps"]["better"] is True
    assert rows["error_rate_pct"]["better"] is None
    assert rows["latency_p50_ms"]["change"] is None


def test_it_needs_three_runs_to_measure_noise() -> None:
    assert charts.noise([10.0, None, 12.0]) is None
    assert charts.noise([10.0, 12.0, 14.0]) == 1.633


def test_the_verdict_flags_a_p95_regression_beyond_10_percent_and_the_noise() -> None:
    verdict = charts.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 115.0}, run_noise=2.0)
    assert verdict.outcome == "regression"
    assert "p95 worse by 15.0 ms" in verdict.reasons[0]


def test_the_verdict_sees_no_change_within_the_noise() -> None:
    # 15% worse, but the runs usually wander by 10 ms: 2 sigma = 20 ms.
    verdict = charts.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 115.0}, run_noise=10.0)
    assert verdict.outcome == "no significant change"


def test_the_verdict_sees_an_improvement_and_an_error_rate_regression() -> None:
    better = charts.verdict({"latency_p95_ms": 100.0}, {"latency_p95_ms": 80.0}, None)
    assert better.outcome == "improvement"
    errors = charts.verdict(
        {"latency_p95_ms": 100.0, "error_rate_pct": 0.1},
        {"latency_p95_ms": 80.0, "error_rate_pct": 2.5},
        None,
    )
    assert errors.outcome == "regression"
    assert "Error rate up by 2.40" in errors.reasons[0]


def test_the_verdict_refuses_runs_without_latency() -> None:
    verdict = charts.verdict({"latency_p95_ms": None}, {"latency_p95_ms": 5.0}, None)
    assert verdict.outcome == "not comparable"
    assert "10%" in charts.VERDICT_RULE


def test_it_lays_out_the_per_step_table_with_known_columns_first() -> None:
    columns, rows = charts.step_table(
        {"home": {"errors": 1, "requests": 10, "p95_ms": 12.3456, "extra": {"x": 1}}}
    )
    assert columns == ["step", "requests", "errors", "p95_ms"]
    assert rows == [["home", "10", "1", "12.35"]]
    assert charts.step_table([{"step": "a", "requests": None}]) == (
        ["step", "requests"],
        [["a", "–"]],
    )
    assert charts.step_table(None) == ([], [])
