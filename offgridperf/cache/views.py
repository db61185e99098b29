"""The Cache page: per-strategy figures and charts over time, and invalidation / metrics reset
behind a permission."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from loadtests.models import LoadTestRun
from offgridperf import access, cache
from offgridperf.models import INVALIDATE_CACHE

INVALIDATE_PERMISSION = f"offgridperf.{INVALIDATE_CACHE}"


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        required=True, error_messages={"required": "Tick the box to confirm."}
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def strategy_rows() -> list[dict[str, Any]]:
    """One row per registered strategy, whichever app declared it."""
    figures = cache.figures()
    keys = cache.key_counts()
    rows = []
    for name, strategy in cache.STRATEGIES.items():
        figure = figures[name]
        rows.append(
            {
                "name": name,
                "description": strategy.description,
                "prefix": f"{strategy.prefix}:*",
                "ttl_s": strategy.ttl,
                "hit_rate": None if figure.hit_rate is None else 100 * figure.hit_rate,
                "counters": figure.counters,
                "operations": figure.operations,
                "p50_ms": _ms(figure.latency_ms(0.50)),
                "p99_ms": _ms(figure.latency_ms(0.99)),
                "keys": keys[name],
            }
        )
    return rows


def chart_data(now: float | None = None) -> dict[str, Any]:
    """The Cache page's charts: per strategy, each second's hit rate and p50/p99 latency over
    the last cache.HISTORY_S seconds, and the load-test runs that overlap the window."""
    end = time.time() if now is None else now
    start = end - cache.HISTORY_S
    strategies = [
        {
            "name": name,
            "points": [
                {
                    "t": point.second,
                    "hit_rate": None
                    if point.figures.hit_rate is None
                    else round(100 * point.figures.hit_rate, 2),
                    "lookups": point.figures.lookups,
                    "p50_ms": point.figures.latency_ms(0.50),
                    "p99_ms": point.figures.latency_ms(0.99),
                }
                for point in points
            ],
        }
        for name, points in cache.history(now=end).items()
    ]
    return {"start": int(start), "end": int(end), "strategies": strategies, "runs": runs_in(start)}


def runs_in(start: float) -> list[dict[str, Any]]:
    """Runs going on at some time since `start` (still going, or finished after it)."""
    since = datetime.fromtimestamp(start, tz=UTC)
    runs = (
        LoadTestRun.objects.filter(started_at__isnull=False)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=since))
        .order_by("started_at")
        .only("pk", "name", "status", "started_at", "finished_at")[:RUNS_SHOWN]
    )
    return [
        {
            "id": run.pk,
            "name": run.name,
            "status": run.status,
            "start": run.started_at.timestamp(),
            "end": run.finished_at.timestamp() if run.finished_at else None,
            "url": reverse("loadtests:run", args=[run.pk]),
        }
        for run in runs
    ]


RUNS_SHOWN = 20


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    charts = chart_data()
    if not request.user.has_perm(access.VIEW_RUNS):
        charts["runs"] = []  # the runs' names and links belong to the load-test area
    context = {
        "nav": "cache",
        "rows": strategy_rows(),
        "charts": charts,
        "history_minutes": cache.HISTORY_S // 60,
        "state": cache.state(),
        "can_invalidate": request.user.has_perm(INVALIDATE_PERMISSION),
    }
    return render(request, "offgridperf/cache.html", context)


@require_http_methods(["GET", "POST"])
@access.requires(INVALIDATE_PERMISSION)
def invalidate(request: HttpRequest, name: str) -> HttpResponse:
    strategy = cache.STRATEGIES.get(name)
    if strategy is None:
        raise Http404(f"no cache strategy {name!r}")
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        generation = strategy.invalidate_all()
        if generation < 0:
            messages.error(request, f"Redis is unreachable: strategy {name} was not invalidated.")
        else:
            messages.success(
                request, f"Strategy {name} invalidated: its keys are now generation {generation}."
            )
        return redirect("cache")
    action = f"Invalidate every key of the {name} strategy ({strategy.prefix}:*)"
    return _confirm(request, form, action)


@require_http_methods(["GET", "POST"])
@access.requires(INVALIDATE_PERMISSION)
def reset_metrics(request: HttpRequest) -> HttpResponse:
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        cache.reset_metrics()
        messages.success(request, "Cache metrics reset for every strategy.")
        return redirect("cache")
    return _confirm(request, form, "Reset the hit, miss, error and latency figures")


def _confirm(request: HttpRequest, form: ConfirmForm, action: str) -> HttpResponse:
    context = {"nav": "cache", "form": form, "action": action}
    status = 400 if form.is_bound else 200
    return render(request, "offgridperf/cache_confirm.html", context, status=status)
