"""The one percentile rule: HdrHistogram's.

The value at percentile p of N counted values is the first value, in ascending order, whose
running count reaches rank(p, N) = max(round-half-up(p% of N), 1). Every page, the engine, the
query capture and the benchmarks read percentiles through this module (a histogram reads them
through `stats.histogram`, which applies this rule to its slots), so one latency has one p95
wherever it is shown.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import TypeVar

Key = TypeVar("Key")


def rank(percentile: float, total: int) -> int:
    """How many of `total` values lie at or below the value at `percentile` (0..100).

    HdrHistogram's rounding, so that our percentiles equal hdrh's for the same counts.
    """
    return max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)


def rank_positions(running: Sequence[int], percentiles: Iterable[float]) -> dict[float, int | None]:
    """{percentile: position of the first running count that reaches its rank}.

    `running` holds running (cumulative) counts in ascending value order, as
    `itertools.accumulate` gives them; positions are None when nothing was counted.
    """
    total = running[-1] if running else 0
    if total <= 0:
        return dict.fromkeys(percentiles)
    # bisect in C over running counts: a histogram's 23,552 slots cost well under a millisecond.
    return {percentile: bisect_left(running, rank(percentile, total)) for percentile in percentiles}


def at_percentiles(
    counted: Iterable[tuple[Key, int]], percentiles: Iterable[float]
) -> dict[float, Key | None]:
    """{percentile: key} over (key, count) pairs in ascending key order; None when empty."""
    keys: list[Key] = []
    counts: list[int] = []
    for key, count in counted:
        if count:
            keys.append(key)
            counts.append(count)
    positions = rank_positions(list(accumulate(counts)), percentiles)
    return {p: None if at is None else keys[at] for p, at in positions.items()}


def at_percentile(counted: Iterable[tuple[Key, int]], percentile: float) -> Key | None:
    """The key at one percentile of ascending (key, count) pairs; None when they are empty."""
    return at_percentiles(counted, (percentile,))[percentile]


def percentile_of(values: Iterable[float], percentile: float) -> float | None:
    """The value at `percentile` of plain values (any order), by the same rule; None if empty."""
    return at_percentile(((value, 1) for value in sorted(values)), percentile)
