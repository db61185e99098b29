"""The query optimizer's panel on the load-test run page: the queries of the run's window.

Three queries per shown run, whatever its length: the target deltas of its window (top 20 by
total time), its app-side windows grouped by shape and origin (top 20), and its N+1
groups. A queued run has not started, so it has no window yet and no panel (no query).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max, Sum

from offgridperf import access
from offgridperf.panels import register_run_panel
from queryopt.models import NPlusOne, QueryStatWindow, StatementDelta
from queryopt.pages import run_window

TOP = 20
N_PLUS_ONE_SHOWN = 20


def register() -> None:
    """Called once from QueryoptConfig.ready()."""
    register_run_panel(
        "queries", "Queries", "queryopt/run_panel.html", run_queries, access.VIEW_QUERIES
    )


def run_queries(run: Any) -> dict[str, Any] | None:
    """The panel's context for `run`, or None before the run started."""
    if run.started_at is None:
        return None
    deltas = (
        StatementDelta.objects.filter(run_window(run))
        .values("shape_id", "shape__query_text", "shape__target__name")
        .annotate(calls=Sum("calls"), total_ms=Sum("total_exec_time_ms"))
        .order_by("-total_ms", "shape_id")[:TOP]
    )
    windows = (
        QueryStatWindow.objects.filter(run=run)
        .values("shape_id", "shape__query_text", "origin")
        .annotate(calls=Sum("calls"), total_ms=Sum("total_ms"), worst_p95_ms=Max("p95_ms"))
        .order_by("-total_ms", "shape_id", "origin")[:TOP]
    )
    groups = NPlusOne.objects.filter(last_run=run).select_related("shape")
    return {
        "run": run,
        "deltas": [_with_mean(row) for row in deltas],
        "windows": [_with_mean(row) for row in windows],
        "n_plus_ones": list(groups.order_by("-total_ms", "pk")[:N_PLUS_ONE_SHOWN]),
    }


def _with_mean(row: dict[str, Any]) -> dict[str, Any]:
    row["mean_ms"] = row["total_ms"] / row["calls"] if row["calls"] else 0.0
    return row
