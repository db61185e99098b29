"""Memory trends: is a process leaking? Pure: no Django, plain numbers in and out.

After a warm-up (the first share of the window) memory is fitted against time twice:

- least squares, whose slope comes with a 95% confidence interval and R²;
- a robust fit that ignores the garbage collector's sawtooth: the window is cut into blocks,
  the lowest value of each block (what survives a collection) is kept, and the Theil-Sen
  estimator (the median of the pairwise slopes) is fitted through those floors.

A verdict never claims more than its window shows, and never contradicts its own interval:

- `inconclusive` when the samples cover less than MIN_DURATION_S (warm-up and a leak look
  alike over a few seconds), always with the reason and the numbers;
- growth that stops is a warm-up, not a leak: when memory rose by at least GROWTH_NOISE_RATIO
  times its noise and then stayed flat (within the stable band) over at least the last
  MIN_FLAT_FRACTION of the window, the flat part is what is fitted, and the reason says
  "warm-up of N MB over M s, then flat";
- `leak` only when the interval's lower bound is above the threshold, the robust slope agrees,
  the growth over the window is at least GROWTH_NOISE_RATIO times the noise (the residuals'
  standard deviation), and memory still grows over the later part (LATER_FRACTION) too;
- `stable` only when the whole interval lies within the stable band, ±STABLE_BAND_FRACTION of
  the threshold: a slope known to be 0.36 to 0.50 MB/min is growth, not stability;
- anything else is `inconclusive`.

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
# Shorter windows are inconclusive: a process warming up (caches, pools, imports) grows for
# tens of seconds exactly as a leaking one does, and only a longer window shows it stop.
MIN_DURATION_S = 30.0
# The stable band, as a share of the leak threshold: stable means the slope's whole interval
# lies within ±(this × threshold), so a slope known to be far from zero is never "stable".
STABLE_BAND_FRACTION = 0.25
# A leak's (and a warm-up's) growth over the window must be at least this many times the
# noise (the residuals' standard deviation): a GC sawtooth makes neighbouring samples
# correlated, which narrows the least-squares interval beyond what the data support.
GROWTH_NOISE_RATIO = 3.0
# RSS moves in pages; below this a series counts as noiseless (MB).
MIN_NOISE_MB = 0.05
# A leak still grows over this last share of the fitted window (growth that slows down to
# nothing there is a warm-up running out).
LATER_FRACTION = 0.5
# A plateau is flat over at least this last share of the whole window.
MIN_FLAT_FRACTION = 1 / 3
PER_MIN = 60.0
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
    duration_s: float = math.nan
    growth_mb: float = math.nan
    noise_mb: float = math.nan
    stable_band_mb_per_min: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """The fields, NaN as None (JSON, and PostgreSQL's jsonb, have no NaN)."""
        return {k: None if _is_nan(v) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Line:
    """A least-squares fit in MB against seconds: slope (MB/s), its 95% half-width, noise."""

    slope: float
    intercept: float
    r2: float
    half_width: float
    noise_mb: float

    @property
    def lower_per_min(self) -> float:
        return (self.slope - self.half_width) * PER_MIN

    @property
    def upper_per_min(self) -> float:
        return (self.slope + self.half_width) * PER_MIN


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def t95(dof: int) -> float:
    if dof <= 0:
        return math.inf
    if dof > 30:
        return 1.96
    return _T95[min(k for k in _T95 if k >= dof)]


def stable_band(threshold_mb_per_min: float) -> float:
    """The half-width (MB/min) of the band a stable slope's whole interval lies within."""
    return threshold_mb_per_min * STABLE_BAND_FRACTION


def rules(threshold_mb_per_min: float) -> list[str]:
    """The verdict rules in words, from the same constants `fit` applies."""
    band = stable_band(threshold_mb_per_min)
    return [
        f"Inconclusive when the samples cover less than {MIN_DURATION_S:g} s: warm-up and a "
        "leak look alike over a short window.",
        f"Leak when the slope's 95% interval lies above {threshold_mb_per_min:g} MB/min, the "
        f"robust slope agrees, the growth is at least {GROWTH_NOISE_RATIO:g}× the noise, and "
        f"memory still grows over the last {LATER_FRACTION:.0%} of the window.",
        f"Stable when the whole 95% interval lies within ±{band:g} MB/min.",
        f"Growth that stops is a warm-up, not a leak: a rise of at least {GROWTH_NOISE_RATIO:g}× "
        f"the noise, then flat over at least the last {MIN_FLAT_FRACTION:.0%} of the window; "
        "the flat part is judged.",
        "Anything else is inconclusive.",
    ]


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
    every = [(t, v / MB) for t, v in zip(times_s, values_bytes, strict=True)]
    duration = covered_s(times_s)
    band = stable_band(threshold_mb_per_min)
    warmup_s = _warmup_end(times_s, warmup_fraction)
    points = [(t, v) for t, v in every if t >= warmup_s]
    if len(points) < MIN_POINTS:
        return _too_few(len(points), warmup_s, threshold_mb_per_min, duration, band)
    plateau = None if duration < MIN_DURATION_S else find_plateau(every, band)
    if plateau is not None:
        warmup_s = plateau
        points = [(t, v) for t, v in every if t >= plateau]
    line = least_squares_line(points)
    robust = theil_sen(block_floors(points, BLOCKS)) * PER_MIN
    growth = line.slope * (points[-1][0] - points[0][0])
    noise = max(line.noise_mb, MIN_NOISE_MB)

    def trend(verdict: str, reason: str) -> Trend:
        return Trend(
            verdict=verdict,
            slope_mb_per_min=line.slope * PER_MIN,
            lower_mb_per_min=line.lower_per_min,
            upper_mb_per_min=line.upper_per_min,
            robust_slope_mb_per_min=robust,
            r2=line.r2,
            intercept_mb=line.intercept,
            points=len(points),
            warmup_s=warmup_s,
            threshold_mb_per_min=threshold_mb_per_min,
            reason=reason,
            duration_s=duration,
            growth_mb=growth,
            noise_mb=line.noise_mb,
            stable_band_mb_per_min=band,
        )

    if duration < MIN_DURATION_S:
        return trend(
            "inconclusive",
            f"the samples cover {duration:.1f} s, under {MIN_DURATION_S:g} s: too short to tell "
            "a leak from warm-up",
        )
    if plateau is not None:
        rise = line.intercept + line.slope * plateau - every[0][1]
        return trend(
            "stable",
            f"warm-up of {rise:.1f} MB over {plateau - every[0][0]:.0f} s, then flat (the "
            f"slope's 95% interval since then lies within ±{band:g} MB/min)",
        )
    later = least_squares_line(_later_part(points))
    return trend(*_verdict(line, later, robust, growth, noise, threshold_mb_per_min, band))


def covered_s(times_s: Sequence[float]) -> float:
    """The time the samples cover: n evenly spaced samples stand for n intervals, not n - 1."""
    n = len(times_s)
    if n < 2:
        return 0.0
    return (times_s[-1] - times_s[0]) * n / (n - 1)


def _warmup_end(times_s: Sequence[float], fraction: float) -> float:
    if not times_s:
        return 0.0
    return times_s[0] + (times_s[-1] - times_s[0]) * fraction


def _too_few(points: int, warmup_s: float, threshold: float, duration: float, band: float) -> Trend:
    nan = math.nan
    return Trend(
        "inconclusive", nan, nan, nan, nan, nan, nan, points, warmup_s, threshold,
        f"only {points} samples after warm-up; at least {MIN_POINTS} are needed",
        duration, nan, nan, band,
    )  # fmt: skip


def _later_part(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    start = points[-1][0] - (points[-1][0] - points[0][0]) * LATER_FRACTION
    later = [p for p in points if p[0] >= start]
    return later if len(later) >= MIN_POINTS else list(points[-MIN_POINTS:])


def _verdict(
    line: Line,
    later: Line,
    robust: float,
    growth: float,
    noise: float,
    threshold: float,
    band: float,
) -> tuple[str, str]:
    low, high = line.lower_per_min, line.upper_per_min
    interval = f"{low:.3f} … {high:.3f} MB/min"
    if low > threshold:
        if robust <= threshold:
            return "inconclusive", "the least-squares and the robust (GC floor) fits disagree"
        if growth < GROWTH_NOISE_RATIO * noise:
            return "inconclusive", (
                f"growth of {growth:.2f} MB is under {GROWTH_NOISE_RATIO:g}× the noise "
                f"({noise:.2f} MB): too little to tell a leak from warm-up; capture longer"
            )
        if later.lower_per_min <= threshold:
            return "inconclusive", (
                f"growth slowed: {later.lower_per_min:.3f} … {later.upper_per_min:.3f} MB/min "
                f"over the last {LATER_FRACTION:.0%} of the window; a longer capture tells a "
                "leak from warm-up"
            )
        return "leak", (
            f"the slope is above {threshold:g} MB/min with 95% confidence ({interval}), "
            f"and still over the last {LATER_FRACTION:.0%} of the window"
        )
    if -band <= low and high <= band:
        if robust > threshold:
            return "inconclusive", "the least-squares and the robust (GC floor) fits disagree"
        return "stable", f"the slope's 95% interval ({interval}) lies within ±{band:g} MB/min"
    if high < -band:
        return "inconclusive", f"memory fell ({interval}): no leak, but not flat either"
    if low <= threshold <= high:
        return "inconclusive", f"the 95% interval of the slope contains {threshold:g} MB/min"
    return "inconclusive", (
        f"the slope's 95% interval ({interval}) is neither within ±{band:g} MB/min (stable) "
        f"nor above {threshold:g} MB/min (leak)"
    )


def find_plateau(points: Sequence[tuple[float, float]], band_mb_per_min: float) -> float | None:
    """When memory rose and then stayed flat: the time the flat part starts, else None.

    The knee is the best fit of "a straight rise, then flat" (a hinge); the flat part starts
    at the first sample from the knee on from which the least-squares slope's 95% interval lies
    within ±band, leaving at least MIN_FLAT_FRACTION of the window. It is a plateau when the
    rise before it is at least GROWTH_NOISE_RATIO times the flat part's noise. Prefix and
    suffix sums keep this one pass, so long captures cost little."""
    n = len(points)
    if n < 2 * MIN_POINTS:
        return None
    t0, v0 = points[0]
    end = points[-1][0]
    latest_start = end - (end - t0) * MIN_FLAT_FRACTION
    band = band_mb_per_min / PER_MIN
    centred = [(t - t0, v - v0) for t, v in points]
    suffix = _suffix_sums(centred)
    for k in range(_knee(centred), n - MIN_POINTS):
        if points[k][0] > latest_start:
            return None
        flat = _line_from_sums(*suffix[k])
        if flat is None or flat.slope - flat.half_width < -band:
            continue
        if flat.slope + flat.half_width > band:
            continue
        level = flat.intercept + flat.slope * centred[k][0]
        if k > 0 and level >= GROWTH_NOISE_RATIO * max(flat.noise_mb, MIN_NOISE_MB):
            return points[k][0]
        return None
    return None


def _knee(points: Sequence[tuple[float, float]]) -> int:
    """The index k whose time c best fits v = a + b·min(t, c): where a rise turns flat."""
    n = len(points)
    total_v = sum(v for _, v in points)
    best, best_k = -1.0, 0
    st = stt = stv = sv = 0.0
    for k, (c, _) in enumerate(points):
        rest = n - k
        sx, sxx = st + rest * c, stt + rest * c * c
        sxv = stv + c * (total_v - sv)
        var_x = sxx - sx * sx / n
        if k >= 2 and var_x > 0:
            explained = (sxv - sx * total_v / n) ** 2 / var_x
            if explained > best:
                best, best_k = explained, k
        t, v = points[k]
        st, stt, stv, sv = st + t, stt + t * t, stv + t * v, sv + v
    return best_k


def _suffix_sums(points: Sequence[tuple[float, float]]) -> list[tuple[float, ...]]:
    """(n, Σt, Σv, Σt², Σv², Σtv) over points[k:] for every k."""
    sums: list[tuple[float, ...]] = [(0, 0.0, 0.0, 0.0, 0.0, 0.0)]
    for t, v in reversed(points):
        n, st, sv, stt, svv, stv = sums[-1]
        sums.append((n + 1, st + t, sv + v, stt + t * t, svv + v * v, stv + t * v))
    return sums[:0:-1]


def _line_from_sums(
    n: float, st: float, sv: float, stt: float, svv: float, stv: float
) -> Line | None:
    if n < 3:
        return None
    sxx = stt - st * st / n
    if sxx <= 0:
        return None
    syy = max(svv - sv * sv / n, 0.0)
    sxy = stv - st * sv / n
    slope = sxy / sxx
    residual = max(syy - slope * sxy, 0.0)
    noise = math.sqrt(residual / (n - 2))
    return Line(
        slope=slope,
        intercept=(sv - slope * st) / n,
        r2=1.0 - residual / syy if syy > 0 else 1.0,
        half_width=t95(int(n) - 2) * noise / math.sqrt(sxx),
        noise_mb=noise,
    )


def least_squares_line(points: Sequence[tuple[float, float]]) -> Line:
    """The least-squares line through `points` (seconds, MB) with its interval and noise."""
    slope, intercept, r2, half_width = least_squares(points)
    n = len(points)
    residual = sum((v - intercept - slope * t) ** 2 for t, v in points)
    noise = math.sqrt(residual / (n - 2)) if n > 2 else math.inf
    return Line(slope, intercept, r2, half_width, noise)


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
