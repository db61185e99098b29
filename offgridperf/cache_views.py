"""The Cache page: per-strategy figures, and invalidation / metrics reset behind a permission."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from offgridperf import cache
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


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    context = {
        "nav": "cache",
        "rows": strategy_rows(),
        "state": cache.state(),
        "can_invalidate": request.user.has_perm(INVALIDATE_PERMISSION),
    }
    return render(request, "offgridperf/cache.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(INVALIDATE_PERMISSION, raise_exception=True)
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
@permission_required(INVALIDATE_PERMISSION, raise_exception=True)
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
