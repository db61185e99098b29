"""The Cache page: per-strategy figures and charts over time, and invalidation / metrics reset
behind a permission."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from offgridperf import access, cache
from offgridperf.cache.pages import chart_data, strategy_rows
from offgridperf.models import INVALIDATE_CACHE

INVALIDATE_PERMISSION = f"offgridperf.{INVALIDATE_CACHE}"


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        required=True, error_messages={"required": "Tick the box to confirm."}
    )


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
