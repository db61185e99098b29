"""The engine's output: per-interval snapshots, the run's result and generator health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from stats.histogram import Histogram

SUMMARY_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9)
# Generator health limits; see RunResult.health.
CPU_SATURATED_PCT = 90.0
BEHIND_RATE_PCT = 5.0
LATE_START_LIMIT_PCT = 5.0
LOOP_LAG_LIMIT_MS = 50.0


class Outcome(StrEnum):
    """How a run ended in the engine: the three values `RunResult.status` takes."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ABORTED = "aborted"


@dataclass
class IntervalSnapshot:
    """One tick of a run (normally one second), as handed to the sink; its fields are named
    as the Django side's RunInterval names them."""

    index: int
    start_offset_s: float
    length_s: float
    requests: int
    errors: int
    errors_by_class: dict[str, int]
    error_samples: dict[str, str]
    latency_histogram: str  # encoded HdrHistogram, corrected latency (µs)
    service_histogram: str  # encoded HdrHistogram, service time (µs)
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    throughput_rps: float
    target: float  # users (closed) or requests/s (open) at the middle of the interval
    active_users: int
    in_flight: int  # sent and unanswered, plus waiting for a connection
    late_starts: int
    cpu_pct: float  # this process's CPU over the interval, 100 = one core
    loop_lag_ms: float  # the largest event-loop lag seen in the interval
    per_step: dict[str, dict[str, int]]
    backlog: int = 0  # of in_flight: requests waiting for a connection (open model)
    in_flight_mean: float = 0.0  # in flight, sampled every 50 ms: the interval's mean
    in_flight_max: int = 0  # ... and its peak
    # Flow mode: whole iterations (journeys) that ended in this interval; "" otherwise.
    iteration_histogram: str = ""  # encoded HdrHistogram, iteration duration (µs)
    iterations: int = 0
    iterations_failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """The whole run.

    `health` says whether the generator itself kept up. The generator is "saturated" when
    its CPU averaged 90% or more of a core, and "lagging" when its event loop's lag p99
    exceeded 50 ms. `valid` is False when:
      - open model: the achieved rate fell more than 5% below the planned rate while the
        generator was saturated or lagging;
      - open model: more than 5% of requests started over 10 ms late while the generator
        was saturated or lagging (late starts alone mean a slow target holding every
        connection, which the corrected latency already shows);
      - either model: the generator was saturated *and* lagging, so the measured latencies
        include time spent waiting for the generator itself.
    `invalid_reason` names the rule that fired.
    """

    status: Outcome
    reason: str
    duration_s: float
    requests: int
    errors: int
    throughput_rps: float
    latency: Histogram
    service: Histogram
    errors_by_class: dict[str, dict[str, Any]]  # {class: {"count": n, "sample": message}}
    per_step: dict[str, dict[str, Any]]
    health: dict[str, Any]
    intervals: int = 0
    connections_opened: int = 0
    planned_requests: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Flow mode: the whole journey's duration from its intended start, and how many ended.
    iteration: Histogram | None = None
    iterations: int = 0
    iterations_failed: int = 0

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; histograms as summaries plus their encoded form."""
        return {
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate_pct": round(self.error_rate_pct, 4),
            "throughput_rps": round(self.throughput_rps, 2),
            "latency_ms": summary_ms(self.latency),
            "service_time_ms": summary_ms(self.service),
            "latency_hist": self.latency.encode(),
            "service_hist": self.service.encode(),
            "errors_by_class": self.errors_by_class,
            "per_step": self.per_step,
            "health": self.health,
            "intervals": self.intervals,
            "connections_opened": self.connections_opened,
            "planned_requests": self.planned_requests,
            **self._iteration_dict(),
            **self.extra,
        }

    def _iteration_dict(self) -> dict[str, Any]:
        if self.iteration is None:
            return {}
        return {
            "iterations": self.iterations,
            "iterations_failed": self.iterations_failed,
            "iteration_ms": summary_ms(self.iteration),
            "iteration_hist": self.iteration.encode(),
        }


def ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3)


def merge_errors(
    totals: dict[str, dict[str, Any]],
    counts: Mapping[str, int],
    samples: Mapping[str, str] | None = None,
) -> None:
    """Add one interval's errors by class to a run's (`{class: {"count": n, "sample": text}}`),
    keeping the first sample message of each class."""
    for error_class, count in counts.items():
        entry = totals.setdefault(error_class, {"count": 0, "sample": ""})
        entry["count"] += count
        if not entry["sample"] and samples:
            entry["sample"] = samples.get(error_class, "")


def summary_ms(histogram: Histogram) -> dict[str, float | int]:
    """count, min, mean, max, stddev and the usual percentiles, in milliseconds."""
    values = histogram.percentiles(SUMMARY_PERCENTILES)
    summary: dict[str, float | int] = {"count": histogram.total_count}
    for percentile, value in values.items():
        summary[f"p{percentile:g}".replace(".", "")] = ms(value)
    summary.update(
        min=ms(histogram.min), mean=ms(histogram.mean), max=ms(histogram.max),
        stddev=ms(histogram.stddev),
    )  # fmt: skip
    return summary


def judge_health(
    *,
    is_open: bool,
    cpu_mean: float,
    lag_p99_ms: float,
    target_rate: float | None,
    achieved_rate: float,
    late_start_pct: float,
) -> tuple[bool, str]:
    """(valid, reason) under the rules in RunResult's docstring."""
    saturated = cpu_mean >= CPU_SATURATED_PCT
    lagging = lag_p99_ms > LOOP_LAG_LIMIT_MS
    if is_open and target_rate:
        behind_pct = 100.0 * (1.0 - achieved_rate / target_rate)
        if behind_pct > BEHIND_RATE_PCT:
            if saturated:
                return False, (
                    f"the generator fell {behind_pct:.1f}% behind the planned rate with its "
                    f"CPU at {cpu_mean:.0f}% of a core"
                )
            if lagging:
                return False, (
                    f"the generator fell {behind_pct:.1f}% behind the planned rate with its "
                    f"event loop lagging {lag_p99_ms:.0f} ms (p99)"
                )
        if late_start_pct > LATE_START_LIMIT_PCT and (saturated or lagging):
            return False, (
                f"{late_start_pct:.1f}% of requests started more than 10 ms late while the "
                "generator was saturated"
            )
    if saturated and lagging:
        return False, (
            f"the generator's CPU averaged {cpu_mean:.0f}% and its event loop lagged "
            f"{lag_p99_ms:.0f} ms (p99): latencies include waiting for the generator"
        )
    return True, ""
