"""The one percentile rule: HdrHistogram's.

The value at percentile p of N counted values is the first value, in ascending order, whose
running count reaches rank(p, N) = max(round-half-up(p% of N), 1). Every page, the engine, the
query capture and the benchmarks read percentiles through this module (a histogram reads them
through `stats.histogram`, which applies this rule to its slots), so one latency has one p95
wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

Key = TypeVar("Key")


def rank(percentile: float, total: int) -> int:
    """How many of `total` values lie at or below the value at `percentile` (0..100).

    HdrHistogram's rounding, so that our percentiles equal hdrh's for the same counts.
    """
    return max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)


def at_percentiles(
    counted: Iterable[tuple[Key, int]], percentiles: Iterable[float], total: int
) -> dict[float, Key | None]:
    """{percentile: key} over (key, count) pairs in ascending key order, in one pass.

    `total` is the sum of the counts (callers know it without a second pass). A percentile
    whose rank is never reached (an empty input) maps to None.
    """
    wanted = sorted(set(percentiles))
    result: dict[float, Key | None] = dict.fromkeys(wanted)
    if total <= 0 or not wanted:
        return result
    pending = iter(wanted)
    percentile = next(pending)
    target = rank(percentile, total)
    running = 0
    for key, count in counted:
        if not count:
            continue
        running += count
        while running >= target:
            result[percentile] = key
            following = next(pending, None)
            if following is None:
                return result
            percentile, target = following, rank(following, total)
    return result


def at_percentile(counted: Iterable[tuple[Key, int]], percentile: float, total: int) -> Key | None:
    """The key at one percentile of ascending (key, count) pairs; None when they are empty."""
    return at_percentiles(counted, (percentile,), total)[percentile]


def percentile_of(values: Iterable[float], percentile: float) -> float | None:
    """The value at `percentile` of plain values (any order), by the same rule; None if empty."""
    ordered = sorted(values)
    return at_percentile(((value, 1) for value in ordered), percentile, len(ordered))


def percentile_of_counts(counts: Iterable[tuple[float, int]], percentile: float) -> float | None:
    """The value at `percentile` of (value, count) pairs in any order, equal values merged."""
    merged: dict[float, int] = {}
    for value, count in counts:
        merged[value] = merged.get(value, 0) + count
    return at_percentile(sorted(merged.items()), percentile, sum(merged.values()))
