"""Statistics shared by the engine, every app and the benchmarks: no Django, nothing of ours.

- `stats.histogram`: the HdrHistogram-compatible log-linear layout (1 µs to 1 h, 3 digits),
  recording, merging, encoding and the interval log.
- `stats.sums`: fast exact sums of encoded histograms.
- `stats.percentile`: the one percentile rule (HdrHistogram's), for histograms and plain values.

    >>> from stats import histogram_of, percentile_of
    >>> histogram_of([1_000] * 95 + [200_000] * 5).value_at_percentile(95)
    1000
    >>> percentile_of([3.0, 1.0, 2.0], 50)
    2.0
"""

from __future__ import annotations

from stats.histogram import Histogram, histogram_of, merge_all
from stats.percentile import (
    at_percentile,
    at_percentiles,
    percentile_of,
    rank,
)

__all__ = [
    "Histogram",
    "at_percentile",
    "at_percentiles",
    "histogram_of",
    "merge_all",
    "percentile_of",
    "rank",
]
