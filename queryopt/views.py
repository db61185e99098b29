"""The query optimizer's pages: queries, one query, indexes per target, the connection pool.

Like loadtests' dashboard, each page aggregates on the server in a fixed number of queries
whatever the number of windows, deltas and plans (lists are limited, never paginated row by
row), and hands chart data to one JS file through json_script. A target's DSN is never shown:
pages print the target's name, and any text from a target goes through queryopt.dsn.redact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from loadtests.models import LoadTestRun
from offgridperf import access
from offgridperf.forms import FilterForm
from queryopt import availability, origins, plans, rollups, services, tasks
from queryopt import pool as pool_stats
from queryopt.dsn import redact
from queryopt.models import (
    NPlusOne,
    QueryFingerprint,
    QueryPlan,
    QueryStatRollup,
    QueryStatWindow,
    QueryTarget,
    RollupGrain,
    SlowQuery,
    SnapshotReason,
    StatementDelta,
)
from stats.sums import HistogramSum

log = logging.getLogger(__name__)

NAV = {"nav": "queries"}
# Rows per page of the list.
PAGE_SIZE = 50
N_PLUS_ONE_SHOWN = 50
SLOW_SHOWN = 20
# The detail chart reads at most this many of the latest windows and snapshots.
CHART_WINDOWS = 5000
CHART_SNAPSHOTS = 500
PLAN_HISTORY = 200
# While a refresh of a target's indexes or a plan is pending, its page reloads itself this
# often (s); a plan not stored within EXPLAIN_WAIT_S is no longer waited for.
INDEXES_POLL_S = 3
EXPLAIN_WAIT_S = 120
DATE_HELP = "YYYY-MM-DD"
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


class QueryFilterForm(FilterForm):
    """The list's filters and sort; an invalid field is reported and left out."""

    target = forms.IntegerField(required=False, min_value=1)
    origin = forms.CharField(required=False, max_length=200)
    run = forms.IntegerField(required=False, min_value=1)
    since = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": f"Enter a date as {DATE_HELP}."},
    )
    until = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": f"Enter a date as {DATE_HELP}."},
    )
    sort = forms.ChoiceField(
        required=False,
        choices=list(SORTS.items()),
        error_messages={"invalid_choice": f"Sort by one of {', '.join(SORTS)}."},
    )
    page = forms.IntegerField(
        required=False, min_value=1, error_messages={"invalid": "Enter a page number."}
    )
    # The tool's own queries (its pages and tasks) are off by default: the list is about the
    # service under test.
    own = forms.BooleanField(required=False)


@dataclass
class QueryRow:
    """One fingerprint on the list. Figures come from the app side when it captured the query
    in the filtered range (it knows origins, runs and percentiles), else from the target's
    pg_stat_statements deltas: adding both would count the same executions twice."""

    fingerprint_id: int
    app_calls: int = 0
    app_total_ms: float = 0.0
    app_p95_bound_ms: float = 0.0  # the worst window's p95: a bound, for ranking only
    origins: set[str] = field(default_factory=set)
    target_calls: int = 0
    target_total_ms: float = 0.0
    p95_ms: float | None = None
    fingerprint: QueryFingerprint | None = None

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
        windows = windows.filter(fingerprint__target_id=filters["target"])
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
        rolled = rolled.filter(fingerprint__target_id=filters["target"])
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
        deltas = deltas.filter(fingerprint__target_id=filters["target"])
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
    """Every fingerprint with statistics under the filters (three grouped queries): the hourly
    roll-ups, the windows after them, the target's deltas. Unless `own` is asked for, the
    tool's own origins are left out, and so are the target figures of a fingerprint that only
    the tool ran (pg_stat_statements cannot tell who ran it; the app side can)."""
    rows: dict[int, QueryRow] = {}
    tail = (
        filtered_windows(filters, after=rolled_up_to)
        .values("fingerprint_id", "origin")
        .annotate(calls=Sum("calls"), total=Sum("total_ms"), p95=Max("p95_ms"))
        .order_by()
    )
    rolled = filtered_rollups(filters, rollup_grain(filters, by_origin=True))
    own_only: set[int] = set()
    for entry in [*rollups.grouped(rolled), *tail]:
        if not filters.get("own") and origins.is_own(entry["origin"]):
            own_only.add(entry["fingerprint_id"])
            continue
        row = rows.setdefault(entry["fingerprint_id"], QueryRow(entry["fingerprint_id"]))
        row.app_calls += entry["calls"] or 0
        row.app_total_ms += entry["total"] or 0.0
        row.app_p95_bound_ms = max(row.app_p95_bound_ms, entry["p95"] or 0.0)
        row.origins.add(entry["origin"])
    own_only -= rows.keys()
    target = (
        filtered_deltas(filters)
        .values("fingerprint_id")
        .annotate(calls=Sum("calls"), total=Sum("total_exec_time_ms"))
        .order_by()
    )
    for entry in target:
        if entry["fingerprint_id"] in own_only:
            continue
        row = rows.setdefault(entry["fingerprint_id"], QueryRow(entry["fingerprint_id"]))
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
    rows.sort(key=lambda row: (-rank(row), row.fingerprint_id))
    return rows, mark


def fill_rows(shown: list[QueryRow], filters: dict[str, Any], sort: str, mark: int) -> None:
    """The shown rows' fingerprints and merged p95 (three queries: the fingerprints, the
    roll-ups' and the later windows' histograms), then their final order."""
    ids = [row.fingerprint_id for row in shown]
    fingerprints = QueryFingerprint.objects.select_related("target").in_bulk(ids)
    histograms: dict[int, list[str]] = {}
    app_ids = [row.fingerprint_id for row in shown if row.app_calls]
    # One row a day per fingerprint when no origin or run narrows the list, and the tool's own
    # origins are in; else per origin, to leave them out.
    grain = rollup_grain(filters, by_origin=not filters.get("own"))
    rolled = without_own(
        filtered_rollups(filters, grain).filter(fingerprint_id__in=app_ids), filters
    )
    windows = without_own(
        filtered_windows(filters, after=mark).filter(fingerprint_id__in=app_ids), filters
    )
    for source in (rolled, windows):
        for fingerprint_id, encoded in source.values_list("fingerprint_id", "histogram"):
            histograms.setdefault(fingerprint_id, []).append(encoded)
    for row in shown:
        row.fingerprint = fingerprints.get(row.fingerprint_id)
        if row.app_calls:
            row.p95_ms = merged_p95_ms(histograms.get(row.fingerprint_id, []))
            if row.p95_ms is None:  # windows stored without histograms
                row.p95_ms = row.app_p95_bound_ms
    shown.sort(key=lambda row: (-SORT_KEYS[sort](row), row.fingerprint_id))


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
    groups = NPlusOne.objects.select_related("fingerprint")
    if "target" in filters:
        groups = groups.filter(fingerprint__target_id=filters["target"])
    if "origin" in filters:
        groups = groups.filter(origin=filters["origin"])
    if "run" in filters:
        groups = groups.filter(last_run_id=filters["run"].pk)
    groups = without_own(groups, filters)
    return list(_dated(groups, "last_seen_at", filters).order_by("-total_ms", "pk")[:limit])


def slow_queries(filters: dict[str, Any], limit: int = SLOW_SHOWN) -> list[SlowQuery]:
    slow = SlowQuery.objects.select_related("fingerprint").defer("params")
    if "target" in filters:
        slow = slow.filter(fingerprint__target_id=filters["target"])
    if "origin" in filters:
        slow = slow.filter(origin=filters["origin"])
    if "run" in filters:
        slow = slow.filter(run_id=filters["run"].pk)
    return list(_dated(without_own(slow, filters), "captured_at", filters)[:limit])


def _resolve_filters(
    form: QueryFilterForm, targets: list[QueryTarget]
) -> tuple[dict[str, Any], list[str]]:
    """The valid filters with the run as a row; problems for a target or run that is not
    there (one query when a run is asked for)."""
    filters = form.valid_filters()
    problems = form.problems()
    if "target" in filters and filters["target"] not in {t.pk for t in targets}:
        problems.append(f"target: there is no query target #{filters.pop('target')}.")
    if "run" in filters:
        run_id = filters.pop("run")
        run = LoadTestRun.objects.only("id", "started_at", "finished_at").filter(pk=run_id).first()
        if run is None:
            problems.append(f"run: there is no load-test run #{run_id}.")
        else:
            filters["run"] = run
    return filters, problems


def _kept(request: HttpRequest, **changed: str) -> dict[str, str]:
    """The request's filters with `changed` in place (empty: left out); a new filter or order
    starts at page 1."""
    kept = {k: v for k, v in request.GET.items() if k not in changed and k != "page" and v}
    return {**kept, **{k: v for k, v in changed.items() if v}}


def _page_links(request: HttpRequest, page: QueryPage) -> dict[str, str]:
    links = {}
    if page.number > 1:
        previous = page.number - 1
        links["previous"] = "?" + urlencode(
            _kept(request, page=str(previous) if previous > 1 else "")
        )
    if page.number < page.pages:
        links["next"] = "?" + urlencode(_kept(request, page=str(page.number + 1)))
    return links


def _sort_columns(request: HttpRequest, sort: str) -> list[dict[str, Any]]:
    """The sortable columns' headers, each a link keeping the other filters."""
    return [
        {
            "key": key,
            "label": label,
            "url": "?" + urlencode(_kept(request, sort=key)),
            "active": key == sort,
        }
        for key, label in SORTS.items()
    ]


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    form = QueryFilterForm(request.GET)
    targets = list(QueryTarget.objects.only("id", "name"))
    filters, problems = _resolve_filters(form, targets)
    number = filters.pop("page", 1)
    if not filters.get("own"):
        filters.pop("own", None)  # the default: not a filter the page mentions
    sort = filters.get("sort") or "total"
    page = query_page(filters, sort, number)
    context = {
        "form": form,
        "problems": problems,
        "targets": targets,
        "filters": filters,
        "sort": sort,
        "sort_label": SORTS[sort],
        "sort_columns": _sort_columns(request, sort),
        "page": page,
        "rows": page.rows,
        "page_links": _page_links(request, page),
        "own_url": "?" + urlencode(_kept(request, own="" if filters.get("own") else "1")),
        "n_plus_ones": n_plus_one_groups(filters),
        "slow_queries": slow_queries(filters),
        **NAV,
    }
    return render(request, "queryopt/index.html", context, status=400 if problems else 200)


# -- one query ----------------------------------------------------------------------------


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def app_minutes(fingerprint: QueryFingerprint, limit: int = CHART_WINDOWS) -> list[dict]:
    """Calls, mean and p95 (merged histograms) per minute of the latest `limit` windows."""
    windows = fingerprint.stat_windows.order_by("-window_start").values_list(
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


def target_snapshots(fingerprint: QueryFingerprint, limit: int = CHART_SNAPSHOTS) -> list[dict]:
    """Calls and mean per snapshot window of the target, oldest first."""
    deltas = fingerprint.deltas.order_by("-snapshot__taken_at").values_list(
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


def plan_history(fingerprint: QueryFingerprint, limit: int = PLAN_HISTORY) -> list[PlanEpoch]:
    """The latest plans' hashes as epochs, newest first (one query, no plan documents)."""
    captured = list(
        fingerprint.plans.order_by("-captured_at", "-pk").values_list("plan_hash", "captured_at")[
            :limit
        ]
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


@login_required
@require_GET
def detail(request: HttpRequest, fingerprint_id: int) -> HttpResponse:
    fingerprint = get_object_or_404(
        QueryFingerprint.objects.select_related("target"), pk=fingerprint_id
    )
    latest_plan = fingerprint.plans.order_by("-captured_at", "-pk").first()
    asked = fingerprint.explain_requested_at
    planning = bool(
        asked
        and not fingerprint.explain_problem
        and (latest_plan is None or latest_plan.captured_at < asked)
        and timezone.now() - asked < timedelta(seconds=EXPLAIN_WAIT_S)
    )
    context = {
        "fingerprint": fingerprint,
        "explain_missing": availability.explain_missing(fingerprint),
        "planning": planning,
        "refresh_every_s": INDEXES_POLL_S,
        "explain_problem": redact(fingerprint.explain_problem, fingerprint.target.dsn)
        if fingerprint.target and fingerprint.explain_problem
        else fingerprint.explain_problem,
        "chart": {"app": app_minutes(fingerprint), "target": target_snapshots(fingerprint)},
        "plan": latest_plan,
        "plan_rows": plan_view(latest_plan),
        "plan_epochs": plan_history(fingerprint),
        "recommendations": list(fingerprint.recommendations.select_related("target")),
        "slow_queries": list(fingerprint.slow_queries.defer("params")[:SLOW_SHOWN]),
        "n_plus_ones": list(fingerprint.n_plus_ones.order_by("-total_ms", "pk")),
        **NAV,
    }
    return render(request, "queryopt/detail.html", context)


@login_required
@require_POST
@access.requires("queryopt.add_queryplan")
def explain_now(request: HttpRequest, fingerprint_id: int) -> HttpResponse:
    """Ask the worker to plan the query now (EXPLAIN without ANALYZE: nothing runs, bounded by
    the connect and statement timeouts); the page shows the plan when it is stored, or why not.
    The request itself never connects to the target."""
    fingerprint = get_object_or_404(QueryFingerprint, pk=fingerprint_id)
    if missing := availability.explain_missing(fingerprint):
        messages.error(request, missing)
        return redirect("queryopt:detail", fingerprint.pk)
    QueryFingerprint.objects.filter(pk=fingerprint.pk).update(
        explain_requested_at=timezone.now(), explain_problem=""
    )
    tasks.explain_fingerprint.delay_on_commit(fingerprint.pk)
    messages.success(request, "Planning: the worker takes the plan; this page refreshes.")
    return redirect("queryopt:detail", fingerprint.pk)


# -- indexes ------------------------------------------------------------------------------


@login_required
@require_GET
def indexes(request: HttpRequest) -> HttpResponse:
    """One target's recommended, unused and duplicate indexes and its hints, all as stored: the
    unused and duplicate ones as the last survey task read them (never live, so a target that
    hangs holds no web thread); a refresh is asked for with a POST."""
    target_list = list(QueryTarget.objects.all())
    problems = []
    chosen = target_list[0] if target_list else None
    wanted = request.GET.get("target", "")
    if wanted:
        chosen = next((t for t in target_list if str(t.pk) == wanted), None)
        if chosen is None:
            problems.append(f"target: there is no query target {wanted!r}; pick one below.")
    report = services.index_report(chosen) if chosen is not None else None
    context = {
        "targets": target_list,
        "chosen": chosen,
        "missing": availability.indexes_missing(bool(target_list)),
        "problems": problems,
        # Stored redacted already; redacted again, as a page must never depend on the writer.
        "last_error": redact(chosen.last_error, chosen.dsn) if chosen is not None else "",
        "report": report,
        "refreshing": bool(report and report["survey"]["refreshing"]),
        "refresh_every_s": INDEXES_POLL_S,
        **NAV,
    }
    return render(request, "queryopt/indexes.html", context, status=400 if problems else 200)


@login_required
@require_POST
@access.requires("queryopt.change_querytarget")
def refresh_indexes(request: HttpRequest, target_id: int) -> HttpResponse:
    """Ask the worker to read the target's indexes again; the page shows it pending."""
    target = get_object_or_404(QueryTarget, pk=target_id)
    if services.request_index_survey(target):
        tasks.refresh_index_survey.delay_on_commit(target.pk)
        messages.success(request, f"Reading the indexes of {target.name}: this page refreshes.")
    else:
        messages.info(request, f"The indexes of {target.name} are being read already.")
    return redirect(f"{reverse('queryopt:indexes')}?{urlencode({'target': target.pk})}")


# -- pool ---------------------------------------------------------------------------------


@login_required
@require_GET
def pool(request: HttpRequest) -> HttpResponse:
    return render(request, "queryopt/pool.html", {"figures": pool_stats.figures(), **NAV})
