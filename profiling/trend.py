"""Memory trends: is a process leaking? Pure: no Django, plain numbers in and out.

After a warm-up (the first share of the window) memory is fitted against time twice:

- least squares, whose slope comes with a 95% confidence interval and R²;
- a robust fit that ignores the garbage collector's sawtooth: the window is cut into blocks,
  the lowest value of each block (what survives a collection) is kept, and the Theil-Sen
  estimator (the median of the pairwise slopes) is fitted through those floors.

The verdict is `leak` when the slope's lower bound is above the threshold and the robust slope
agrees, `stable` when the upper bound is below it and the robust slope agrees, otherwise
`inconclusive`, always with the numbers.

    >>> t = [i * 1.0 for i in range(120)]
    >>> fit(t, [100e6 + 1e6 * x for x in t], threshold_mb_per_min=1.0).verdict   # 60 MB/min
    'leak'
    >>> fit(t, [100e6 for _ in t], threshold_mb_per_min=1.0).verdict
    'stable'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

MB = 1_000_000
BLOCKS = 20
MIN_POINTS = 5
# Two-sided 95% Student t quantiles by degrees of freedom; above 30 the normal value.
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042,
}  # fmt: skip


@dataclass(frozen=True)
class Trend:
    verdict: str
    slope_mb_per_min: float
    lower_mb_per_min: float
    upper_mb_per_min: float
    robust_slope_mb_per_min: float
    r2: float
    intercept_mb: float
    points: int
    warmup_s: float
    threshold_mb_per_min: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The fields, NaN as None (JSON, and PostgreSQL's jsonb, have no NaN)."""
        return {k: None if _is_nan(v) else v for k, v in asdict(self).items()}


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def t95(dof: int) -> float:
    if dof <= 0:
        return math.inf
    if dof > 30:
        return 1.96
    return _T95[min(k for k in _T95 if k >= dof)]


def fit(
    times_s: Sequence[float],
    values_bytes: Sequence[float],
    *,
    threshold_mb_per_min: float = 1.0,
    warmup_fraction: float = 0.1,
) -> Trend:
    """The trend of `values_bytes` (e.g. RSS) sampled at `times_s` (seconds, increasing)."""
    if len(times_s) != len(values_bytes):
        raise ValueError("times_s and values_bytes must have the same length")
    if not 0 <= warmup_fraction < 1:
        raise ValueError("warmup_fraction must be in [0, 1)")
    warmup_s = _warmup_end(times_s, warmup_fraction)
    points = [(t, v / MB) for t, v in zip(times_s, values_bytes, strict=True) if t >= warmup_s]
    if len(points) < MIN_POINTS:
        return _too_few(len(points), warmup_s, threshold_mb_per_min)
    slope, intercept, r2, half_width = least_squares(points)
    robust = theil_sen(block_floors(points, BLOCKS))
    per_min = 60.0
    low, high = (slope - half_width) * per_min, (slope + half_width) * per_min
    robust_min = robust * per_min
    verdict, reason = _verdict(low, high, robust_min, threshold_mb_per_min)
    return Trend(
        verdict=verdict,
        slope_mb_per_min=slope * per_min,
        lower_mb_per_min=low,
        upper_mb_per_min=high,
        robust_slope_mb_per_min=robust_min,
        r2=r2,
        intercept_mb=intercept,
        points=len(points),
        warmup_s=warmup_s,
        threshold_mb_per_min=threshold_mb_per_min,
        reason=reason,
    )


def _warmup_end(times_s: Sequence[float], fraction: float) -> float:
    if not times_s:
        return 0.0
    return times_s[0] + (times_s[-1] - times_s[0]) * fraction


def _too_few(points: int, warmup_s: float, threshold: float) -> Trend:
    nan = math.nan
    return Trend(
        "inconclusive", nan, nan, nan, nan, nan, nan, points, warmup_s, threshold,
        f"only {points} samples after warm-up; at least {MIN_POINTS} are needed",
    )  # fmt: skip


def _verdict(low: float, high: float, robust: float, threshold: float) -> tuple[str, str]:
    if low > threshold and robust > threshold:
        return "leak", f"the slope is above {threshold:g} MB/min with 95% confidence"
    if high < threshold and robust < threshold:
        return "stable", f"the slope is below {threshold:g} MB/min with 95% confidence"
    if low > threshold or high < threshold:
        return "inconclusive", "the least-squares and the robust (GC floor) fits disagree"
    return "inconclusive", f"the 95% interval of the slope contains {threshold:g} MB/min"


def least_squares(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    """Slope, intercept, R² and the slope's 95% half-width of a straight-line fit."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if sxx == 0:
        return 0.0, mean_v, 0.0, math.inf
    sxy = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = sxy / sxx
    intercept = mean_v - slope * mean_t
    residual = sum((v - intercept - slope * t) ** 2 for t, v in points)
    total = sum((v - mean_v) ** 2 for _, v in points)
    r2 = 1.0 - residual / total if total > 0 else 1.0
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return slope, intercept, r2, t95(n - 2) * stderr


def block_floors(points: Sequence[tuple[float, float]], blocks: int) -> list[tuple[float, float]]:
    """The lowest point of each of `blocks` equal time slices: the floor a GC sawtooth leaves."""
    start, end = points[0][0], points[-1][0]
    width = (end - start) / blocks or 1.0
    floors: dict[int, tuple[float, float]] = {}
    for t, v in points:
        index = min(int((t - start) / width), blocks - 1)
        if index not in floors or v < floors[index][1]:
            floors[index] = (t, v)
    return [floors[i] for i in sorted(floors)]


def theil_sen(points: Sequence[tuple[float, float]]) -> float:
    """The median of the slopes between every pair of points with different times."""
    slopes = [
        (v2 - v1) / (t2 - t1)
        for i, (t1, v1) in enumerate(points)
        for t2, v2 in points[i + 1 :]
        if t2 != t1
    ]
    return statistics.median(slopes) if slopes else 0.0


def per_thousand_requests(slope_mb_per_min: float, requests_per_s: float) -> float | None:
    """The slope in MB per 1,000 requests, for a window under a load of `requests_per_s`."""
    if requests_per_s <= 0 or math.isnan(slope_mb_per_min):
        return None
    return slope_mb_per_min / (requests_per_s * 60.0) * 1000.0
