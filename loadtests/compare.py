"""Comparing two runs: the metric deltas, the run-to-run noise and the verdict (no Django).

The verdict states its rule in `VERDICT_RULE` so that the compare page can print exactly what
it applied. Not to be confused with a run's threshold verdict, which judges one run against
its own limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import pstdev
from typing import Any

REGRESSION_PCT = 10.0
NOISE_SIGMAS = 2.0
NOISE_MIN_RUNS = 3
NOISE_RUNS = 10
ERROR_RATE_POINTS = 1.0

NOT_ENOUGH_HISTORY = "not enough history to judge noise"
# A figure of a run (or step) that sent no requests is no measurement: 0 ms or 0 req/s there
# would read as a -100% change. Such a figure gets no percentage and no colour, only this.
NO_DATA_BASELINE = "no data in baseline"
NO_DATA_THIS_RUN = "no data in this run"
NO_DATA_EITHER = "no data in either run"

VERDICT_RULE = (
    f"Regression: p95 worse by more than {REGRESSION_PCT:g}% and by more than "
    f"{NOISE_SIGMAS:g}× the run-to-run noise (standard deviation of p95 over the last "
    f"{NOISE_RUNS} finished runs of the baseline's definition, needing at least "
    f"{NOISE_MIN_RUNS}), or error rate up by more than {ERROR_RATE_POINTS:g} percentage point. "
    "Improvement: p95 better by the same margins with the error rate not up by more than "
    f"{ERROR_RATE_POINTS:g} point. Otherwise: no significant change. "
    f"Confidence: with fewer than {NOISE_MIN_RUNS} baseline runs there is {NOT_ENOUGH_HISTORY}, "
    f"so a p95 change within {REGRESSION_PCT:g}% is inconclusive (neither improvement nor "
    "regression nor no change) and any verdict is marked low confidence."
)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    lower_is_better: bool


COMPARED_METRICS = (
    Metric("latency_p50_ms", "p50 (ms)", True),
    Metric("latency_p95_ms", "p95 (ms)", True),
    Metric("latency_p99_ms", "p99 (ms)", True),
    Metric("throughput_rps", "throughput (req/s)", False),
    Metric("error_rate_pct", "error rate (%)", True),
)


def has_data(figures: Mapping[str, Any]) -> bool:
    """Whether a run's (or a step's) figures measured anything: it sent requests. Figures
    without a request count are judged by their values alone."""
    requests = figures.get("requests")
    return requests is None or (isinstance(requests, int | float) and requests > 0)


def no_data_text(has_a: bool, has_b: bool) -> str | None:
    """What a compared figure says instead of a change when a side has no data, else None."""
    if has_a and has_b:
        return None
    if not has_a and not has_b:
        return NO_DATA_EITHER
    return NO_DATA_THIS_RUN if has_a else NO_DATA_BASELINE


def _figure(va: Any, vb: Any, lower_is_better: bool, missing: str | None) -> dict[str, Any]:
    # One compared figure: the change and its direction exist only with data on both sides;
    # a relative change also needs a non-zero baseline.
    numeric = isinstance(va, int | float) and isinstance(vb, int | float)
    if missing is None and not numeric:
        missing = no_data_text(isinstance(va, int | float), isinstance(vb, int | float))
    if missing is not None:
        # The side with data keeps its figure; the other shows none (a 0 there is no figure).
        kept_a = va if missing == NO_DATA_THIS_RUN else None
        kept_b = vb if missing == NO_DATA_BASELINE else None
        return {"a": kept_a, "b": kept_b, "change": None, "change_pct": None, "better": None,
                "no_data": missing}  # fmt: skip
    change = round(vb - va, 3)
    pct = round(100.0 * change / va, 1) if va else None
    # Coloured only when the figure shown moved: "+0.0%" is no change, whatever the digits.
    shown = pct if pct is not None else change
    better = (shown < 0) == lower_is_better if shown else None
    return {"a": va, "b": vb, "change": change, "change_pct": pct, "better": better,
            "no_data": None}  # fmt: skip


def deltas(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per compared metric: a, b, change and relative change (b against a); a side
    without data (`has_data`) blanks the row and `no_data` says which."""
    missing = no_data_text(has_data(a), has_data(b))
    rows = []
    for metric in COMPARED_METRICS:
        figure = _figure(a.get(metric.key), b.get(metric.key), metric.lower_is_better, missing)
        rows.append({"key": metric.key, "label": metric.label, **figure})
    return rows


def noise(p95_history: Sequence[float | None]) -> float | None:
    """Run-to-run noise of p95: the population standard deviation, None with too few runs."""
    values = [v for v in p95_history if v is not None]
    if len(values) < NOISE_MIN_RUNS:
        return None
    return round(pstdev(values), 3)


@dataclass(frozen=True)
class Verdict:
    # "regression", "improvement", "no significant change", "inconclusive", "not comparable"
    outcome: str
    reasons: tuple[str, ...]
    # "measured": the noise of at least NOISE_MIN_RUNS runs was known; "low": it was not.
    confidence: str = "measured"


def confidence_text(history_runs: int) -> str:
    """How sure a verdict is, from the number of baseline runs that measured the noise."""
    if history_runs < NOISE_MIN_RUNS:
        return (
            f"Low confidence: {NOT_ENOUGH_HISTORY} "
            f"({history_runs} baseline run{'s' if history_runs != 1 else ''}, "
            f"{NOISE_MIN_RUNS} needed)."
        )
    return f"Noise measured over {history_runs} baseline runs."


def verdict(
    a: Mapping[str, float | None], b: Mapping[str, float | None], run_noise: float | None
) -> Verdict:
    """Judge run b against baseline a by `VERDICT_RULE`; `run_noise` None means too few
    baseline runs to measure it, and then a p95 change within the margin is inconclusive."""
    confidence = "measured" if run_noise is not None else "low"
    pa, pb = a.get("latency_p95_ms"), b.get("latency_p95_ms")
    missing = no_data_text(has_data(a) and pa is not None, has_data(b) and pb is not None)
    if missing is not None:
        return Verdict("not comparable", (f"No p95 latency to compare: {missing}.",))
    assert pa is not None and pb is not None
    if pa <= 0:
        return Verdict("not comparable", ("The baseline's p95 latency is 0 ms.",))
    margin = max(pa * REGRESSION_PCT / 100.0, NOISE_SIGMAS * (run_noise or 0.0))
    change = pb - pa
    error_change = (b.get("error_rate_pct") or 0.0) - (a.get("error_rate_pct") or 0.0)
    reasons: list[str] = []
    if change > margin:
        reasons.append(f"p95 worse by {change:.1f} ms (margin {margin:.1f} ms).")
    if error_change > ERROR_RATE_POINTS:
        reasons.append(f"Error rate up by {error_change:.2f} percentage points.")
    if reasons:
        return Verdict("regression", tuple(reasons), confidence)
    if -change > margin:
        return Verdict(
            "improvement",
            (f"p95 better by {-change:.1f} ms (margin {margin:.1f} ms).",),
            confidence,
        )
    if run_noise is None:
        return Verdict(
            "inconclusive",
            # confidence_text() then says why: NOT_ENOUGH_HISTORY.
            (
                f"p95 changed by {change:+.1f} ms, within the {REGRESSION_PCT:g}% margin of "
                f"{margin:.1f} ms.",
            ),
            confidence,
        )
    return Verdict(
        "no significant change",
        (f"p95 changed by {change:+.1f} ms, within the margin of {margin:.1f} ms.",),
        confidence,
    )


STEP_METRICS = (
    Metric("p50_ms", "p50 (ms)", True),
    Metric("p95_ms", "p95 (ms)", True),
    Metric("p99_ms", "p99 (ms)", True),
    Metric("error_rate_pct", "error rate (%)", True),
)


def _step_stats(steps_summary: Any) -> dict[str, dict[str, Any]]:
    # Runs store {step name: {stat: value}}; older ones a list of {"step"/"name": ...}.
    if isinstance(steps_summary, dict):
        items = {name: s for name, s in steps_summary.items() if isinstance(s, dict)}
    else:
        items = {
            str(s.get("step", s.get("name", ""))): s
            for s in steps_summary or []
            if isinstance(s, dict)
        }
    stats = {}
    for name, values in items.items():
        requests, errors = values.get("requests"), values.get("errors")
        error_rate = (
            round(100.0 * errors / requests, 3) if requests and errors is not None else None
        )
        stats[name] = {**values, "error_rate_pct": error_rate}
    return stats


def step_deltas(steps_a: Any, steps_b: Any) -> list[dict[str, Any]]:
    """One row per step (a's order, then steps only b has): each STEP_METRICS value in a and b
    and b's relative change. A step missing from a run, or without requests in it, has no
    data there: its cells carry `no_data` instead of a change."""
    a, b = _step_stats(steps_a), _step_stats(steps_b)
    names = list(a) + [name for name in b if name not in a]
    rows = []
    for name in names:
        in_a, in_b = name in a, name in b
        missing = no_data_text(in_a and has_data(a[name]), in_b and has_data(b[name]))
        cells = []
        for metric in STEP_METRICS:
            va, vb = a.get(name, {}).get(metric.key), b.get(name, {}).get(metric.key)
            figure = _figure(va, vb, metric.lower_is_better, missing)
            cells.append({"key": metric.key, **figure})
        rows.append({"step": name, "in_a": in_a, "in_b": in_b, "no_data": missing,
                     "cells": cells})  # fmt: skip
    return rows
