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
