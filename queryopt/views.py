"""The query optimizer's pages: queries, one query, indexes per target, the connection pool.

HTTP only: the figures come from queryopt.pages (a fixed number of queries per page) and the
chart data goes to one JS file through json_script. A target's DSN is never shown: pages print
the target's name, and any text from a target goes through queryopt.dsn.redact.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from loadtests.models import LoadTestRun
from offgridperf import access
from queryopt import availability, services, tasks
from queryopt import pool as pool_stats
from queryopt.dsn import redact
from queryopt.forms import QueryFilterForm
from queryopt.models import QueryShape, QueryTarget
from queryopt.pages import (
    SLOW_SHOWN,
    SORTS,
    QueryPage,
    app_minutes,
    n_plus_one_groups,
    plan_history,
    plan_view,
    query_page,
    slow_queries,
    target_snapshots,
)

log = logging.getLogger(__name__)

NAV = {"nav": "queries"}
# While a refresh of a target's indexes or a plan is pending, its page reloads itself this
# often (s); a plan not stored within EXPLAIN_WAIT_S is no longer waited for.
INDEXES_POLL_S = 3
EXPLAIN_WAIT_S = 120


# -- queries list ---------------------------------------------------------------------------


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


@login_required
@require_GET
def run_statement(request: HttpRequest, run_id: int, fingerprint: str) -> HttpResponse:
    """From a run page's top statement (the target agent's fingerprint) to its query page."""
    run = get_object_or_404(LoadTestRun.objects.only("pk", "steps_summary"), pk=run_id)
    shape = services.shape_of_run_statement(run, fingerprint)
    if shape is None:
        raise Http404(f"Run {run_id} names no statement with the fingerprint {fingerprint}.")
    return redirect("queryopt:detail", shape_id=shape.pk)


@login_required
@require_GET
def detail(request: HttpRequest, shape_id: int) -> HttpResponse:
    shape = get_object_or_404(QueryShape.objects.select_related("target"), pk=shape_id)
    latest_plan = shape.plans.order_by("-captured_at", "-pk").first()
    asked = shape.explain_requested_at
    planning = bool(
        asked
        and not shape.explain_problem
        and (latest_plan is None or latest_plan.captured_at < asked)
        and timezone.now() - asked < timedelta(seconds=EXPLAIN_WAIT_S)
    )
    context = {
        "shape": shape,
        "explain_missing": availability.explain_missing(shape),
        "planning": planning,
        "refresh_every_s": INDEXES_POLL_S,
        "explain_problem": redact(shape.explain_problem, shape.target.dsn)
        if shape.target and shape.explain_problem
        else shape.explain_problem,
        "chart": {"app": app_minutes(shape), "target": target_snapshots(shape)},
        "plan": latest_plan,
        "plan_rows": plan_view(latest_plan),
        "plan_epochs": plan_history(shape),
        "recommendations": list(shape.recommendations.select_related("target")),
        "slow_queries": list(shape.slow_queries.defer("params")[:SLOW_SHOWN]),
        "n_plus_ones": list(shape.n_plus_ones.order_by("-total_ms", "pk")),
        **NAV,
    }
    return render(request, "queryopt/detail.html", context)


@login_required
@require_POST
@access.requires("queryopt.add_queryplan")
def explain_now(request: HttpRequest, shape_id: int) -> HttpResponse:
    """Ask the worker to plan the query now (EXPLAIN without ANALYZE: nothing runs, bounded by
    the connect and statement timeouts); the page shows the plan when it is stored, or why not.
    The request itself never connects to the target."""
    shape = get_object_or_404(QueryShape, pk=shape_id)
    if missing := availability.explain_missing(shape):
        messages.error(request, missing)
        return redirect("queryopt:detail", shape.pk)
    QueryShape.objects.filter(pk=shape.pk).update(
        explain_requested_at=timezone.now(), explain_problem=""
    )
    tasks.explain_shape.delay_on_commit(shape.pk)
    messages.success(request, "Planning: the worker takes the plan; this page refreshes.")
    return redirect("queryopt:detail", shape.pk)


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
