"""A run as the outside world sees it: the JSON that `loadtest --json` prints and the HTTP API
answers (one shape for both, so a script can switch between them), and the progress line the
CLI prints each second, whether it runs the engine itself or follows a worker or a server."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from loadtests import reports, waiting
from loadtests.models import LoadTestRun, RunStatus

# From reports.summary_dict; `config` stays out (it is the definition's business, and long).
JSON_KEYS = (
    "id", "name", "status", "status_reason", "trigger", "passed", "started_at", "finished_at",
    "duration_s", "requests", "errors", "error_rate_pct", "throughput_rps", "latency_ms",
    "service_time_ms", "iterations", "errors_by_class", "steps", "thresholds", "health",
    "valid",
)  # fmt: skip


def run_url(run: LoadTestRun, base_url: str | None = None) -> str:
    """The run page's absolute URL: under `base_url` (a request's), else OFFGRIDPERF_BASE_URL."""
    base = (base_url or settings.OFFGRIDPERF_BASE_URL).rstrip("/")
    return base + run.get_absolute_url()


def run_json(run: LoadTestRun, *, base_url: str | None = None) -> dict[str, Any]:
    """The run's summary, verdicts (name, limit, actual, passed), per-step figures, generator
    health and page URL; while it is active, also its progress (and while queued, what it
    waits for). Secrets are masked."""
    summary = reports.summary_dict(run)
    document = {key: summary[key] for key in JSON_KEYS}
    document["definition_id"] = run.definition_id
    document["planned_duration_s"] = run.planned_duration_s
    document["created_at"] = run.created_at.isoformat() if run.created_at else None
    document["queued_s"] = (
        round((run.started_at - run.created_at).total_seconds(), 1) if run.started_at else None
    )
    document["worker"] = run.worker_node or (
        f"{run.worker_host} pid {run.worker_pid}" if run.worker_host else ""
    )
    document["url"] = run_url(run, base_url)
    document["progress"] = live_progress(run) if run.is_active else None
    queued = run.status == RunStatus.QUEUED
    document["waiting"] = waiting.waiting_state(run, waiting.queue_workers()) if queued else None
    return document


def live_progress(run: LoadTestRun) -> dict[str, Any]:
    """Where a stored run is now: its totals and its latest second (one query)."""
    latest = run.intervals.order_by("-index").only("throughput_rps", "latency_p95_ms").first()
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0.0
    return {
        "elapsed_s": round(elapsed, 1),
        "planned_s": run.planned_duration_s,
        "requests": run.requests,
        "errors": run.errors,
        "throughput_rps": latest.throughput_rps if latest else None,
        "latency_p95_ms": latest.latency_p95_ms if latest else None,
    }


def progress_line(progress: dict[str, Any]) -> str:
    """`[  3s/10s]  98.7 req/s  p95 2.41 ms  errors 0 (0.00%)  requests 296`."""
    requests, errors = progress["requests"] or 0, progress["errors"] or 0
    rate = "-" if progress["throughput_rps"] is None else f"{progress['throughput_rps']:.1f}"
    p95 = "-" if progress["latency_p95_ms"] is None else f"{progress['latency_p95_ms']:.2f}"
    share = 100.0 * errors / requests if requests else 0.0
    return (
        f"[{progress['elapsed_s']:>4.0f}s/{progress['planned_s']}s] {rate:>8} req/s  "
        f"p95 {p95} ms  errors {errors} ({share:.2f}%)  requests {requests}"
    )
