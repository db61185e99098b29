"""What a run reports: its summary figures and verdict, and the summaries and exports the
pages, the CLI and the API hand out (summary JSON, intervals CSV, HdrHistogram log)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from loadtests import documents, secrets
from loadtests.engine.results import merge_errors, summary_ms
from loadtests.models import LoadTestRun, RunInterval, RunStatus
from stats.histogram import Histogram, write_interval_log

FINISHED_EXIT_CODES = {RunStatus.PASSED: 0, RunStatus.FAILED: 1, RunStatus.ABORTED: 1}


def histogram_summary(histogram: Histogram, prefix: str) -> dict[str, float | int]:
    """The engine's summary of a histogram as run fields: latency_p95_ms, latency_mean_ms, ..."""
    if histogram.total_count == 0:
        return {}
    return {
        f"{prefix}_{name}_ms": value
        for name, value in summary_ms(histogram).items()
        if name != "count"
    }


def merged_histograms(intervals: Iterable[RunInterval]) -> tuple[Histogram, Histogram]:
    latency, service = Histogram(), Histogram()
    for interval in intervals:
        if interval.latency_histogram:
            latency.merge(Histogram.decode(interval.latency_histogram))
        if interval.service_histogram:
            service.merge(Histogram.decode(interval.service_histogram))
    return latency, service


def merged_errors(intervals: Iterable[RunInterval]) -> dict[str, dict[str, Any]]:
    """The errors by class of stored seconds, as a run's: {class: {"count": n, "sample": ""}}."""
    totals: dict[str, dict[str, Any]] = {}
    for interval in intervals:
        merge_errors(totals, interval.errors_by_class)
    return totals


def merged_iterations(intervals: Iterable[RunInterval]) -> Histogram | None:
    """The whole journeys of stored seconds (flow mode); None when none recorded any."""
    encoded = [i.iteration_histogram for i in intervals if i.iteration_histogram]
    if not encoded:
        return None
    merged = Histogram()
    for text in encoded:
        merged.merge(Histogram.decode(text))
    return merged


def iteration_summary(histogram: Histogram | None) -> dict[str, float]:
    """p50/p95/p99 (ms) of the whole journeys; empty without any."""
    if histogram is None or histogram.total_count == 0:
        return {}
    figures = summary_ms(histogram)
    return {f"{name}_ms": figures[name] for name in ("p50", "p95", "p99")}


# Without an explicit error-rate threshold, a run with more errors than this fails: a run
# that mostly failed must never read as passed.
DEFAULT_ERROR_RATE_LIMIT_PCT = 5.0
ANY_SUCCESS_RULE = "any_success"
DEFAULT_ERROR_RATE_RULE = "default_error_rate_pct"
THRESHOLD_CHECKS = (
    ("p95_ms", "p95 latency (ms)", "latency_p95_ms", "max"),
    ("p99_ms", "p99 latency (ms)", "latency_p99_ms", "max"),
    ("error_rate_pct", "error rate (%)", "error_rate_pct", "max"),
    ("min_throughput_rps", "throughput (req/s)", "throughput_rps", "min"),
    ("iteration_p95_ms", "iteration p95 (ms)", "iteration_p95_ms", "max"),
)


def _verdict(
    name: str, label: str, limit: float, actual: Any, kind: str, *, implicit: bool
) -> dict[str, Any]:
    within = actual is not None and (actual <= limit if kind == "max" else actual >= limit)
    return {
        "name": name,
        "label": label,
        "limit": limit,
        "actual": actual,
        "kind": kind,
        "passed": within,
        "implicit": implicit,
    }


def evaluate_thresholds(
    thresholds: dict[str, Any], summary: dict[str, Any]
) -> list[dict[str, Any]]:
    """One verdict per rule: name, label, limit, actual, whether it passed, and whether it is
    implicit. The implicit rules: at least one request succeeded (always), and the default
    error-rate limit (only when no error-rate threshold is set: an explicit one replaces it)."""
    succeeded = int(summary.get("requests") or 0) - int(summary.get("errors") or 0)
    results = [
        _verdict(
            ANY_SUCCESS_RULE, "at least one request succeeded", 1, succeeded, "min", implicit=True
        )
    ]
    for key, label, metric, kind in THRESHOLD_CHECKS:
        limit = thresholds.get(key)
        if limit is not None:
            results.append(_verdict(key, label, limit, summary.get(metric), kind, implicit=False))
    if thresholds.get("error_rate_pct") is None:
        results.append(
            _verdict(
                DEFAULT_ERROR_RATE_RULE,
                "error rate (%), default limit",
                DEFAULT_ERROR_RATE_LIMIT_PCT,
                summary.get("error_rate_pct"),
                "max",
                implicit=True,
            )
        )
    return results


def failure_text(item: dict[str, Any], requests: int) -> str:
    """Why one rule failed, naming the figure, its actual value, the limit and the rule."""
    if item["name"] == ANY_SUCCESS_RULE:
        what = f"all {requests} requests failed" if requests else "no request was sent"
        return f"No request succeeded: {what} (rule {ANY_SUCCESS_RULE})."
    if item["name"] == DEFAULT_ERROR_RATE_RULE:
        return (
            f"Error rate {item['actual']:g}% is above the default limit of {item['limit']:g}% "
            f"(rule {DEFAULT_ERROR_RATE_RULE}; set an error-rate threshold to choose another)."
        )
    side = "above" if item.get("kind") == "max" else "below"
    actual = "unknown" if item["actual"] is None else f"{item['actual']:g}"
    return (
        f"Threshold not met: {item['label']} is {actual}, {side} {item['limit']:g} "
        f"(rule {item['name']})."
    )


def rule_text(item: dict[str, Any]) -> str:
    """A rule as a condition: `p95 latency (ms) ≤ 200`."""
    if item["name"] == ANY_SUCCESS_RULE:
        return item["label"]
    sign = "≤" if item.get("kind") == "max" else "≥"
    return f"{item['label']} {sign} {item['limit']:g}"


def verdict_reason(results: list[dict[str, Any]], requests: int) -> str:
    """Which rules decided the verdict: the ones that failed, or every rule that was met."""
    failed = [item for item in results if not item["passed"]]
    if failed:
        return " ".join(failure_text(item, requests) for item in failed)
    return f"All rules met: {'; '.join(rule_text(item) for item in results)}."


# -- summaries and exports --------------------------------------------------------------


def summary_dict(run: LoadTestRun) -> dict[str, Any]:
    """The run's summary as one JSON object (CLI --json, downloads)."""
    return {
        "id": run.pk,
        "name": run.name,
        "status": run.status,
        "status_reason": secrets.redact_config_text(run.status_reason, run.config),
        "trigger": run.trigger,
        "passed": run.passed,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
        "requests": run.requests,
        "errors": run.errors,
        "error_rate_pct": run.error_rate_pct,
        "throughput_rps": run.throughput_rps,
        "latency_ms": run.percentiles("latency"),
        "service_time_ms": run.percentiles("service"),
        "iterations": {
            "count": run.iterations,
            "failed": run.iterations_failed,
            "p50_ms": run.iteration_p50_ms,
            "p95_ms": run.iteration_p95_ms,
            "p99_ms": run.iteration_p99_ms,
        },
        "errors_by_class": run.errors_by_class,
        "steps": run.steps_summary,
        "thresholds": run.threshold_results,
        "health": run.health,
        "valid": run.valid,
        # Only the engine sees secret header values; everything that leaves shows the mask.
        "config": secrets.masked_config(documents.upgrade(run.config)),
    }


def exit_code(run: LoadTestRun) -> int:
    """0: thresholds pass, 1: they fail, 2: the run did not complete (error, cancel, ...)."""
    return FINISHED_EXIT_CODES.get(RunStatus(run.status), 2)


INTERVAL_COLUMNS = (
    "index", "started_at", "length_s", "requests", "errors", "throughput_rps", "target",
    "active_users", "in_flight", "late_starts", "latency_p50_ms", "latency_p95_ms",
    "latency_p99_ms", "latency_max_ms", "service_p50_ms", "service_p95_ms", "service_p99_ms",
    "cpu_pct", "loop_lag_ms", "iterations", "iterations_failed",
)  # fmt: skip


def intervals_csv(run: LoadTestRun) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*INTERVAL_COLUMNS, "errors_by_class"])
    for row in run.intervals.values_list(*INTERVAL_COLUMNS, "errors_by_class").iterator():
        *values, errors_by_class = row
        writer.writerow(
            [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
            + [json.dumps(errors_by_class, sort_keys=True)]
        )
    return out.getvalue()


def histogram_log(run: LoadTestRun) -> str:
    """The run's per-second latency histograms in HdrHistogram interval-log format."""
    start = run.started_at.timestamp() if run.started_at else 0.0
    rows = run.intervals.exclude(latency_histogram="").values_list(
        "index", "length_s", "latency_histogram"
    )
    return write_interval_log(
        ((float(index), length, encoded) for index, length, encoded in rows.iterator()),
        start_time_s=start,
    )
