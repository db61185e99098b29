"""Read side of the Cache page: per-strategy figures, and charts over time beside the load-test
runs that overlap them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q
from django.urls import reverse

from loadtests.models import LoadTestRun
from offgridperf import cache


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
