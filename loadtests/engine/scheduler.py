"""Targets over time: k6-style linear stages, and open-model arrival times that follow them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from loadtests.engine.config import Stage


class Ramp:
    """A piecewise-linear target (users or requests per second) over the run.

    Without stages the target holds at `constant` for `duration_s`. With stages, each stage
    ramps linearly from the previous stage's target (the first from `start`, 0 by default) to
    its own over its duration, as k6's ramping executors do.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        constant: float,
        duration_s: float,
        start: float | None = None,
    ) -> None:
        # Segments as (t0, t1, v0, v1).
        self.segments: list[tuple[float, float, float, float]] = []
        if not stages:
            self.segments.append((0.0, duration_s, constant, constant))
        else:
            t, value = 0.0, float(start or 0.0)
            for stage in stages:
                self.segments.append((t, t + stage.duration_s, value, float(stage.target)))
                t, value = t + stage.duration_s, float(stage.target)
        self.duration_s = self.segments[-1][1]

    def target_at(self, t: float) -> float:
        """The target at `t` seconds into the run (the last value after the end)."""
        for t0, t1, v0, v1 in self.segments:
            if t < t1:
                if t <= t0:
                    return v0
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return self.segments[-1][3]

    def peak(self) -> float:
        return max(max(v0, v1) for _, _, v0, v1 in self.segments)

    def integral(self, a: float, b: float) -> float:
        """The area under the target between `a` and `b`: expected requests for a rate."""
        total = 0.0
        for t0, t1, _, _ in self.segments:
            lo, hi = max(a, t0), min(b, t1)
            if hi > lo:
                total += (self.target_at(lo) + self.target_at(hi)) / 2 * (hi - lo)
        return total


class ArrivalSchedule:
    """Intended start times of an open-model run: the k-th request starts when the integral of
    the rate since the start reaches k, so a constant rate R gives starts at 0, 1/R, 2/R, ...
    and a ramp spaces them by the instantaneous rate."""

    def __init__(self, ramp: Ramp) -> None:
        self.ramp = ramp
        self.segment = 0
        self.segment_base = 0.0  # requests due before the current segment starts
        self.count = 0

    def next(self) -> float | None:
        """The next intended start (seconds from the run's start), or None past the end."""
        segments = self.ramp.segments
        while self.segment < len(segments):
            t0, t1, v0, v1 = segments[self.segment]
            span = t1 - t0
            area = (v0 + v1) / 2 * span
            wanted = self.count - self.segment_base
            if wanted < area:
                offset = _time_for_area(v0, (v1 - v0) / span if span else 0.0, wanted)
                when = t0 + offset
                if when < t1:
                    self.count += 1
                    return when
            self.segment += 1
            self.segment_base += area
        return None


def _time_for_area(rate: float, slope: float, area: float) -> float:
    """Seconds after which a rate starting at `rate` and changing by `slope` per second has
    accumulated `area` requests; solves rate*t + slope*t²/2 = area in a cancellation-free form."""
    if area <= 0:
        return 0.0
    root = math.sqrt(max(rate * rate + 2.0 * slope * area, 0.0))
    denominator = rate + root
    if denominator <= 0:
        return math.inf
    return 2.0 * area / denominator
