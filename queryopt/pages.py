"""Read side of the query optimizer's pages: the queries list, one query's charts and plans.

Like loadtests' pages, each function runs a fixed number of queries whatever the number of
windows, deltas and plans (lists are limited, never paginated row by row).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import Max, Q, QuerySet, Sum
from django.utils import timezone

from loadtests.models import LoadTestRun
from queryopt import origins, plans, rollups
from queryopt.models import (
    NPlusOne,
    QueryPlan,
    QueryShape,
    QueryStatRollup,
    QueryStatWindow,
    RollupGrain,
    SlowQuery,
    SnapshotReason,
    StatementDelta,
)
from stats.sums import HistogramSum

log = logging.getLogger(__name__)

# Rows per page of the list.
PAGE_SIZE = 50
N_PLUS_ONE_SHOWN = 50
SLOW_SHOWN = 20
# The detail chart reads at most this many of the latest windows and snapshots.
CHART_WINDOWS = 5000
CHART_SNAPSHOTS = 500
PLAN_HISTORY = 200
# The list's sort orders, largest first; p95 is the app side's (pg_stat_statements has none).
SORTS = {
    "total": "total time",
    "mean": "mean time",
    "calls": "calls",
    "p95": "p95",
}


# -- shared read side ---------------------------------------------------------------------


def merged_p95_ms(encoded: Iterable[str]) -> float | None:
    """The 95th percentile (ms) of the union of encoded microsecond histograms, or None."""
    value = HistogramSum().add_all(encoded).value_at_percentile(95.0)
    return value / 1000.0 if value is not None else None


def run_window(run: LoadTestRun) -> Q:
    """The StatementDelta rows of a run's window, on every target: the deltas of its run_end
    snapshot, and those of snapshots taken between its start and end for other reasons (a
    scheduled snapshot splits the window in two). A run_start snapshot's deltas are what came
    before the run, so they are left out."""
    window = Q(snapshot__run=run, snapshot__reason=SnapshotReason.RUN_END)
    if run.started_at is None:
        return window
    end = run.finished_at or timezone.now()
    during = Q(snapshot__taken_at__gte=run.started_at, snapshot__taken_at__lte=end) & ~Q(
        snapshot__reason=SnapshotReason.RUN_START
    )
    return window | during


# -- queries list ---------------------------------------------------------------------------


@dataclass
class QueryRow:
    """One query shape on the list. Figures come from the app side when it captured the query
    in the filtered range (it knows origins, runs and percentiles), else from the target's
    pg_stat_statements deltas: adding both would count the same executions twice."""

    shape_id: int
    app_calls: int = 0
    app_total_ms: float = 0.0
    app_p95_bound_ms: float = 0.0  # the worst window's p95: a bound, for ranking only
    origins: set[str] = field(default_factory=set)
    target_calls: int = 0
    target_total_ms: float = 0.0
    p95_ms: float | None = None
    shape: QueryShape | None = None

    @property
    def origin_list(self) -> list[str]:
        return sorted(self.origins)

    @property
    def source(self) -> str:
        if self.app_calls and self.target_calls:
            return "app + target"
        return "app" if self.app_calls else "target"

    @property
    def calls(self) -> int:
        return self.app_calls or self.target_calls

    @property
    def total_ms(self) -> float:
        return self.app_total_ms if self.app_calls else self.target_total_ms

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _dated(queryset: QuerySet, column: str, filters: dict[str, Any]) -> QuerySet:
    if "since" in filters:
        queryset = queryset.filter(**{f"{column}__gte": _day_start(filters["since"])})
    if "until" in filters:
        end = _day_start(filters["until"]) + timedelta(days=1)
        queryset = queryset.filter(**{f"{column}__lt": end})
    return queryset


def without_own(queryset: QuerySet, filters: dict[str, Any]) -> QuerySet:
    """`queryset` (with an `origin`) less the tool's own origins, unless they are asked for."""
    return queryset if filters.get("own") else queryset.exclude(origins.own_q())


def filtered_windows(filters: dict[str, Any], after: int = 0) -> QuerySet[QueryStatWindow]:
    """The windows under the filters; with `after`, only those not rolled up yet."""
    windows = QueryStatWindow.objects.filter(pk__gt=after) if after else QueryStatWindow.objects
    if "target" in filters:
        windows = windows.filter(shape__target_id=filters["target"])
    if "origin" in filters:
        windows = windows.filter(origin=filters["origin"])
    if "run" in filters:
        windows = windows.filter(run_id=filters["run"].pk)
    return _dated(windows.all(), "window_start", filters)


def filtered_rollups(filters: dict[str, Any], grain: str) -> QuerySet[QueryStatRollup]:
    """The daily roll-ups of `grain` under the filters (the grain must allow them: see
    rollup_grain)."""
    rolled = QueryStatRollup.objects.filter(grain=grain)
    if "target" in filters:
        rolled = rolled.filter(shape__target_id=filters["target"])
    if "origin" in filters:
        rolled = rolled.filter(origin=filters["origin"])
    if "run" in filters:
        rolled = rolled.filter(run_id=filters["run"].pk)
    if "since" in filters:
        rolled = rolled.filter(day__gte=filters["since"])
    if "until" in filters:
        rolled = rolled.filter(day__lte=filters["until"])
    return rolled


def filtered_deltas(filters: dict[str, Any]) -> QuerySet[StatementDelta]:
    deltas = StatementDelta.objects.all()
    if "origin" in filters:
        return deltas.none()  # pg_stat_statements does not know which view ran a query
    if "target" in filters:
        deltas = deltas.filter(shape__target_id=filters["target"])
    if "run" in filters:
        deltas = deltas.filter(run_window(filters["run"]))
    return _dated(deltas, "snapshot__taken_at", filters)


def rollup_grain(filters: dict[str, Any], *, by_origin: bool) -> str:
    """The coarsest roll-up grain that answers `filters`, split by origin or not."""
    if "run" in filters:
        return RollupGrain.RUN
    if by_origin or "origin" in filters:
        return RollupGrain.ORIGIN
    return RollupGrain.FINGERPRINT


def query_rows(filters: dict[str, Any], rolled_up_to: int) -> dict[int, QueryRow]:
    """Every shape with statistics under the filters (three grouped queries): the hourly
    roll-ups, the windows after them, the target's deltas. Unless `own` is asked for, the
    tool's own origins are left out, and so are the target figures of a shape that only
    the tool ran (pg_stat_statements cannot tell who ran it; the app side can)."""
    rows: dict[int, QueryRow] = {}
    tail = (
        filtered_windows(filters, after=rolled_up_to)
        .values("shape_id", "origin")
        .annotate(calls=Sum("calls"), total=Sum("total_ms"), p95=Max("p95_ms"))
        .order_by()
    )
    rolled = filtered_rollups(filters, rollup_grain(filters, by_origin=True))
    own_only: set[int] = set()
    for entry in [*rollups.grouped(rolled), *tail]:
        if not filters.get("own") and origins.is_own(entry["origin"]):
            own_only.add(entry["shape_id"])
            continue
        row = rows.setdefault(entry["shape_id"], QueryRow(entry["shape_id"]))
        row.app_calls += entry["calls"] or 0
        row.app_total_ms += entry["total"] or 0.0
        row.app_p95_bound_ms = max(row.app_p95_bound_ms, entry["p95"] or 0.0)
        row.origins.add(entry["origin"])
    own_only -= rows.keys()
    target = (
        filtered_deltas(filters)
        .values("shape_id")
        .annotate(calls=Sum("calls"), total=Sum("total_exec_time_ms"))
        .order_by()
    )
    for entry in target:
        if entry["shape_id"] in own_only:
            continue
        row = rows.setdefault(entry["shape_id"], QueryRow(entry["shape_id"]))
        row.target_calls += entry["calls"] or 0
        row.target_total_ms += entry["total"] or 0.0
    return rows


SORT_KEYS: dict[str, Callable[[QueryRow], float]] = {
    "total": lambda row: row.total_ms,
    "mean": lambda row: row.mean_ms,
    "calls": lambda row: row.calls,
    "p95": lambda row: row.p95_ms if row.p95_ms is not None else -1.0,
}


@dataclass
class QueryPage:
    rows: list[QueryRow]
    number: int
    pages: int
    total: int


def ranked_rows(filters: dict[str, Any], sort: str) -> tuple[list[QueryRow], int]:
    """Every row in `sort` order (for p95, by the worst window's p95, an upper bound of the
    merged one, so that only the shown rows' histograms are read), and the roll-up mark."""
    mark = rollups.rolled_up_to()
    rows = list(query_rows(filters, mark).values())
    rank = (lambda row: row.app_p95_bound_ms) if sort == "p95" else SORT_KEYS[sort]
    rows.sort(key=lambda row: (-rank(row), row.shape_id))
    return rows, mark


def fill_rows(shown: list[QueryRow], filters: dict[str, Any], sort: str, mark: int) -> None:
    """The shown rows' shapes and merged p95 (three queries: the shapes, the
    roll-ups' and the later windows' histograms), then their final order."""
    ids = [row.shape_id for row in shown]
    shapes = QueryShape.objects.select_related("target").in_bulk(ids)
    histograms: dict[int, list[str]] = {}
    app_ids = [row.shape_id for row in shown if row.app_calls]
    # One row a day per shape when no origin or run narrows the list, and the tool's own
    # origins are in; else per origin, to leave them out.
    grain = rollup_grain(filters, by_origin=not filters.get("own"))
    rolled = without_own(filtered_rollups(filters, grain).filter(shape_id__in=app_ids), filters)
    windows = without_own(
        filtered_windows(filters, after=mark).filter(shape_id__in=app_ids), filters
    )
    for source in (rolled, windows):
        for shape_id, encoded in source.values_list("shape_id", "histogram"):
            histograms.setdefault(shape_id, []).append(encoded)
    for row in shown:
        row.shape = shapes.get(row.shape_id)
        if row.app_calls:
            row.p95_ms = merged_p95_ms(histograms.get(row.shape_id, []))
            if row.p95_ms is None:  # windows stored without histograms
                row.p95_ms = row.app_p95_bound_ms
    shown.sort(key=lambda row: (-SORT_KEYS[sort](row), row.shape_id))


def top_rows(
    filters: dict[str, Any], sort: str, limit: int = PAGE_SIZE, offset: int = 0
) -> list[QueryRow]:
    """`limit` rows by `sort` from `offset`, filled (four queries with the roll-up mark)."""
    rows, mark = ranked_rows(filters, sort)
    shown = rows[offset : offset + limit]
    fill_rows(shown, filters, sort, mark)
    return shown


def query_page(filters: dict[str, Any], sort: str, number: int) -> QueryPage:
    """Page `number` (from 1; past the last, the last) of PAGE_SIZE rows."""
    rows, mark = ranked_rows(filters, sort)
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    number = min(max(number, 1), pages)
    shown = rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    fill_rows(shown, filters, sort, mark)
    return QueryPage(shown, number, pages, len(rows))


def n_plus_one_groups(filters: dict[str, Any], limit: int = N_PLUS_ONE_SHOWN) -> list[NPlusOne]:
    groups = NPlusOne.objects.select_related("shape")
    if "target" in filters:
        groups = groups.filter(shape__target_id=filters["target"])
    if "origin" in filters:
        groups = groups.filter(origin=filters["origin"])
    if "run" in filters:
        groups = groups.filter(last_run_id=filters["run"].pk)
    groups = without_own(groups, filters)
    return list(_dated(groups, "last_seen_at", filters).order_by("-total_ms", "pk")[:limit])


def slow_queries(filters: dict[str, Any], limit: int = SLOW_SHOWN) -> list[SlowQuery]:
    slow = SlowQuery.objects.select_related("shape").defer("params")
    if "target" in filters:
        slow = slow.filter(shape__target_id=filters["target"])
    if "origin" in filters:
        slow = slow.filter(origin=filters["origin"])
    if "run" in filters:
        slow = slow.filter(run_id=filters["run"].pk)
    return list(_dated(without_own(slow, filters), "captured_at", filters)[:limit])


# -- one query ----------------------------------------------------------------------------


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def app_minutes(shape: QueryShape, limit: int = CHART_WINDOWS) -> list[dict]:
    """Calls, mean and p95 (merged histograms) per minute of the latest `limit` windows."""
    windows = shape.stat_windows.order_by("-window_start").values_list(
        "window_start", "calls", "total_ms", "p95_ms", "histogram"
    )[:limit]
    minutes: dict[datetime, list[Any]] = {}
    for start, calls, total_ms, p95_ms, encoded in windows:
        minute = start.replace(second=0, microsecond=0)
        entry = minutes.setdefault(minute, [0, 0.0, 0.0, []])
        entry[0] += calls
        entry[1] += total_ms
        entry[2] = max(entry[2], p95_ms)
        entry[3].append(encoded)
    points = []
    for minute in sorted(minutes):
        calls, total_ms, worst_p95, encoded = minutes[minute]
        p95 = merged_p95_ms(encoded)
        points.append(
            {
                "t": _epoch_ms(minute),
                "calls": calls,
                "mean": round(total_ms / calls, 3) if calls else None,
                "p95": round(p95 if p95 is not None else worst_p95, 3),
            }
        )
    return points


def target_snapshots(shape: QueryShape, limit: int = CHART_SNAPSHOTS) -> list[dict]:
    """Calls and mean per snapshot window of the target, oldest first."""
    deltas = shape.deltas.order_by("-snapshot__taken_at").values_list(
        "snapshot__taken_at", "calls", "mean_exec_time_ms", "total_exec_time_ms"
    )[:limit]
    return [
        {"t": _epoch_ms(taken), "calls": calls, "mean": round(mean, 3), "total": round(total, 3)}
        for taken, calls, mean, total in reversed(list(deltas))
    ]


@dataclass
class PlanEpoch:
    """A stretch of consecutive plans with one hash; `changed` when the one before differed."""

    plan_hash: str
    first_seen: datetime
    last_seen: datetime
    count: int
    changed: bool


def plan_history(shape: QueryShape, limit: int = PLAN_HISTORY) -> list[PlanEpoch]:
    """The latest plans' hashes as epochs, newest first (one query, no plan documents)."""
    captured = list(
        shape.plans.order_by("-captured_at", "-pk").values_list("plan_hash", "captured_at")[:limit]
    )
    epochs: list[PlanEpoch] = []
    for plan_hash, at in reversed(captured):
        if epochs and epochs[-1].plan_hash == plan_hash:
            epochs[-1].last_seen, epochs[-1].count = at, epochs[-1].count + 1
        else:
            epochs.append(PlanEpoch(plan_hash, at, at, 1, changed=bool(epochs)))
    return list(reversed(epochs))


def plan_view(plan: QueryPlan | None) -> list[dict[str, Any]]:
    """The plan's nodes for the tree view, with problems from queryopt.plans."""
    if plan is None:
        return []
    try:
        rows = plans.plan_rows(plan.plan)
    except (KeyError, TypeError):
        log.warning("plan %s has no readable tree", plan.pk)
        return []
    return [
        {
            "row": row,
            "indent": row.depth * 1.25,
            "share_pct": round(row.time_share * 100, 1) if row.time_share is not None else None,
        }
        for row in rows
    ]
