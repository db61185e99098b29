"""Pure computation behind the dashboard's charts (no Django imports).

Downsampling keeps each bucket's mean, minimum and maximum so that a one-second spike in an
hour-long run still shows as a band on a 600-point chart. Comparing two runs (deltas, noise,
verdict) lives in `loadtests.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

MAX_POINTS = 600


def bucket_bounds(count: int, max_points: int = MAX_POINTS) -> list[tuple[int, int]]:
    """[start, end) index ranges splitting `count` items into at most `max_points` buckets."""
    if count <= 0:
        return []
    buckets = min(count, max(1, max_points))
    return [(i * count // buckets, (i + 1) * count // buckets) for i in range(buckets)]


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def downsample(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    max_points: int = MAX_POINTS,
    banded: Collection[str] | None = None,
) -> dict[str, Any]:
    """Reduce parallel series to at most `max_points` points.

    Returns {"x": [...], "downsampled": bool, "series": {name: {"mean", "min", "max"}}}; each
    bucket's x is its first x, and None values (a second without requests) are left out of
    the bucket's statistics. Only series in `banded` (all when None) get "min" and "max";
    without downsampling they equal the values themselves.
    """
    bounds = bucket_bounds(len(x), max_points)
    downsampled = len(bounds) < len(x)
    result: dict[str, Any] = {"x": [x[start] for start, _ in bounds], "downsampled": downsampled}
    result["series"] = {}
    for name, values in series.items():
        with_band = banded is None or name in banded
        if not downsampled:
            values = list(values)
            result["series"][name] = (
                {"mean": values, "min": values, "max": values} if with_band else {"mean": values}
            )
            continue
        buckets = [[v for v in values[start:end] if v is not None] for start, end in bounds]
        entry = {"mean": [_mean(bucket) for bucket in buckets]}
        if with_band:
            entry["min"] = [min(bucket) if bucket else None for bucket in buckets]
            entry["max"] = [max(bucket) if bucket else None for bucket in buckets]
        result["series"][name] = entry
    return result


def progress(elapsed_s: float | None, planned_s: float) -> float:
    """Percentage of the planned duration done, clamped to 0..100."""
    if not elapsed_s or planned_s <= 0:
        return 0.0
    return round(min(100.0, max(0.0, 100.0 * elapsed_s / planned_s)), 1)


def spectrum_x(percentile: float) -> float:
    """Position on an HdrHistogram percentile plot: 0 -> 0, 90 -> 1, 99 -> 2, 99.9 -> 3, ...

    The maximum (100) has no finite position; it is placed one decade past 99.999.
    """
    if percentile >= 100.0:
        return 6.0
    return round(-math.log10(1.0 - percentile / 100.0), 4)


def spectrum_points(points: Iterable[tuple[float, float]], unit_div: float = 1000.0) -> list[dict]:
    """(percentile, value) pairs -> chart points {x, y, p} with y divided by `unit_div`."""
    return [
        {"x": spectrum_x(p), "y": round(value / unit_div, 3), "p": p}
        for p, value in points
        if p <= 99.999 or p == 100.0
    ]


def distribution_points(
    buckets: Iterable[tuple[float, float, int]], unit_div: float = 1000.0
) -> list[dict]:
    """(lower, upper, count) buckets -> {lo, hi, count} in the chart's unit (ms by default)."""
    return [
        {"lo": round(lo / unit_div, 3), "hi": round(hi / unit_div, 3), "count": count}
        for lo, hi, count in buckets
    ]


STEP_COLUMN_ORDER = (
    "step", "requests", "attempts", "polls_exhausted", "errors", "p50_ms", "p90_ms", "p95_ms",
    "p99_ms", "max_ms", "mean_ms",
)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def step_table(steps_summary: Any) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows of the per-step table, whatever keys the engine reported.

    Accepts {step name: {stat: value}} or [{"step"/"name": ..., stat: value}]; known columns
    come first in a fixed order, the rest as they appear.
    """
    if isinstance(steps_summary, dict):
        items = [
            {"step": name, **(stats if isinstance(stats, dict) else {"value": stats})}
            for name, stats in steps_summary.items()
        ]
    else:
        items = [dict(item) for item in steps_summary or [] if isinstance(item, dict)]
    seen: list[str] = []
    for item in items:
        for key, value in item.items():
            if key not in seen and not isinstance(value, dict | list):
                seen.append(key)
    known = [key for key in STEP_COLUMN_ORDER if key in seen]
    columns = known + [key for key in seen if key not in known]
    return columns, [[_cell(item.get(column)) for column in columns] for item in items]
