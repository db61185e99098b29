"""Pure computation behind the dashboard's charts (no Django imports).

Downsampling keeps each bucket's mean, minimum and maximum so that a one-second spike in an
hour-long run still shows as a band on a 600-point chart. Comparing two runs (deltas, noise,
verdict) lives in `loadtests.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from stats.histogram import sparse_percentiles

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


# -- per-second percentiles: drawn only from enough requests ---------------------------------

# A percentile of fewer requests than this is the maximum of a handful of samples, not p99:
# such a second is judged from a rolling window of the seconds before it instead.
PERCENTILE_MIN_REQUESTS: dict[str, int] = {"p50": 2, "p95": 20, "p99": 100}
PERCENTILE_LEVELS: dict[str, float] = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
# How far back a rolling window may reach; a second still short of requests is not drawn.
ROLLING_WINDOW_MAX_S = 60
# The largest minimum: seconds below it need their histogram read for a rolling window.
ROLLING_BELOW = max(PERCENTILE_MIN_REQUESTS.values())
PERCENTILE_RULE = (
    "A second's p50, p95 and p99 are drawn from that second alone when it had at least "
    + ", ".join(str(PERCENTILE_MIN_REQUESTS[name]) for name in ("p50", "p95", "p99"))
    + " requests respectively; otherwise from a rolling window (that second merged with the "
    f"ones before it until it has as many requests, at most {ROLLING_WINDOW_MAX_S} s), drawn as "
    "hollow triangles; a second still short of requests is not drawn."
)

Samples = Sequence[tuple[int, int]]  # (histogram slot, count) pairs of one second, any order


def window_percentile(samples: Iterable[Samples], percentile: float) -> float | None:
    """The value (ms) at `percentile` of the seconds' merged histogram slots, by stats' rule."""
    merged: dict[int, int] = {}
    for second in samples:
        for index, count in second:
            merged[index] = merged.get(index, 0) + count
    value = sparse_percentiles(merged, (percentile,))[percentile]
    return None if value is None else value / 1000.0


def gated_percentile(
    counts: Sequence[int],
    values: Sequence[float | None],
    samples: Sequence[Samples],
    name: str,
    max_window_s: int = ROLLING_WINDOW_MAX_S,
) -> tuple[list[float | None], list[bool]]:
    """Per-second `name` ("p50", "p95", "p99") where each second had enough requests, else from
    a rolling window of the seconds up to it; returns (values, rolling flags).

    `values` are the seconds' own percentiles; `samples` their (slot, count) pairs, needed
    only for seconds below the minimum. A second without requests, or whose window of
    `max_window_s` seconds is still short, gets None.
    """
    needed = PERCENTILE_MIN_REQUESTS[name]
    shown: list[float | None] = []
    rolling: list[bool] = []
    for i, count in enumerate(counts):
        if count >= needed or not count:
            shown.append(values[i] if count else None)
            rolling.append(False)
            continue
        start, total = i, count
        while total < needed and start > 0 and i - start + 1 < max_window_s:
            start -= 1
            total += counts[start]
        enough = total >= needed
        shown.append(
            window_percentile(samples[start : i + 1], PERCENTILE_LEVELS[name]) if enough else None
        )
        rolling.append(enough)
    return shown, rolling


def any_in_buckets(flags: Sequence[bool], max_points: int = MAX_POINTS) -> list[bool]:
    """Flags downsampled like `downsample`'s series: a bucket is flagged if any second is."""
    return [any(flags[start:end]) for start, end in bucket_bounds(len(flags), max_points)]


# -- distribution: 1-2-5 buckets ---------------------------------------------------------------


def _one_two_five_at_or_above(value: float) -> float:
    """The smallest 1-2-5 series value (…, 0.5, 1, 2, 5, 10, …) at or above `value` (> 0),
    after rounding to two significant digits (the fine buckets' edges are 1.996, 5.012, …)."""
    rounded = float(f"{value:.2g}")
    decade = 10.0 ** math.floor(math.log10(rounded))
    for mantissa in (1, 2, 5, 10):
        edge = round(mantissa * decade, 12)
        if rounded <= edge:
            return edge
    return round(10 * decade, 12)


def _next_one_two_five(edge: float) -> float:
    # 1 -> 2 -> 5 -> 10: the mantissa decides the step.
    mantissa = round(edge / 10.0 ** math.floor(math.log10(edge) + 1e-9), 6)
    return round(edge * (2.5 if mantissa == 2 else 2), 12)


def one_two_five_buckets(points: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Fine log buckets ({lo, hi, count}, 10 per decade) merged into 1-2-5 buckets whose upper
    bounds read 1, 2, 5, 10, 20 ms …; each carries a `label` such as "2" or "0.5"."""
    merged: dict[float, int] = {}
    for point in points:
        if point["hi"] <= 0:
            continue
        edge = _one_two_five_at_or_above(point["hi"])
        merged[edge] = merged.get(edge, 0) + point["count"]
    if not merged:
        return []
    # Every 1-2-5 edge from the lowest to the highest, empty ones too, for an even axis.
    edges = [min(merged)]
    while edges[-1] < max(merged):
        edges.append(_next_one_two_five(edges[-1]))
    return [
        {
            "lo": edges[position - 1] if position else 0.0,
            "hi": edge,
            "count": merged.get(edge, 0),
            "label": f"{edge:g}",
        }
        for position, edge in enumerate(edges)
    ]


# -- generator health and per-step tables with labels and units ------------------------------

HEALTH_LABELS: dict[str, tuple[str, str]] = {
    "cpu_pct_mean": ("Generator CPU, mean", "%"),
    "cpu_pct_max": ("Generator CPU, max", "%"),
    "loop_lag_ms_p99": ("Event-loop lag, p99", "ms"),
    "loop_lag_ms_max": ("Event-loop lag, max", "ms"),
    "target_rate": ("Planned rate", "req/s"),
    "achieved_rate": ("Achieved rate", "req/s"),
    "late_starts": ("Late starts", "requests"),
    "late_start_pct": ("Late starts, share", "% of requests"),
    "stale_retries": ("Stale retries", ""),
    "invalid_reason": ("Why not valid", ""),
}


def health_rows(health: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value with unit) rows of a run's generator health; keys without a value (an
    unplanned rate, an empty reason) are left out and unknown keys keep their name."""
    rows = []
    for key, value in (health or {}).items():
        if key == "valid" or value is None or value == "":
            continue
        label, unit = HEALTH_LABELS.get(key, (key.replace("_", " ").capitalize(), ""))
        text = f"{value:g}" if isinstance(value, float) else str(value)
        rows.append((label, f"{text} {unit}".strip()))
    return rows


STEP_LABELS: dict[str, str] = {
    "step": "Step", "requests": "Requests", "throughput_rps": "req/s", "share": "Share",
    "attempts": "Attempts", "polls_exhausted": "Polls exhausted", "errors": "Errors",
    "p50_ms": "p50 (ms)", "p90_ms": "p90 (ms)", "p95_ms": "p95 (ms)", "p99_ms": "p99 (ms)",
    "max_ms": "max (ms)", "mean_ms": "mean (ms)",
}  # fmt: skip


def _step_items(steps_summary: Any) -> list[dict[str, Any]]:
    if isinstance(steps_summary, dict):
        return [
            {"step": name, **(stats if isinstance(stats, dict) else {"value": stats})}
            for name, stats in steps_summary.items()
        ]
    return [dict(item) for item in steps_summary or [] if isinstance(item, dict)]


def labelled_step_table(
    steps_summary: Any, order: Sequence[str] = (), duration_s: float | None = None
) -> tuple[list[str], list[list[str]]]:
    """The per-step table as the run page shows it: rows in the definition's step order
    (`order`; steps it does not name follow), a req/s column (over `duration_s`) and a share
    of all requests, and column labels with units instead of raw keys."""
    items = _step_items(steps_summary)
    for item in items:
        item.setdefault("step", item.pop("name", ""))
    position = {name: i for i, name in enumerate(order)}
    items.sort(key=lambda item: position.get(item["step"], len(position)))
    total = sum(item.get("requests") or 0 for item in items)
    for item in items:
        requests = item.get("requests")
        if isinstance(requests, int | float):
            item["throughput_rps"] = round(requests / duration_s, 2) if duration_s else None
            item["share"] = f"{100.0 * requests / total:.1f}%" if total else None
    keys, rows = step_table(items)
    # req/s and share sit right after the request count.
    if "throughput_rps" in keys:
        moved = [keys.index(k) for k in ("throughput_rps", "share")]
        rest = [i for i in range(len(keys)) if i not in moved]
        at = rest.index(keys.index("requests")) + 1 if "requests" in keys else 1
        order_of = rest[:at] + moved + rest[at:]
        keys = [keys[i] for i in order_of]
        rows = [[row[i] for i in order_of] for row in rows]
    return [STEP_LABELS.get(key, key.replace("_", " ")) for key in keys], rows
