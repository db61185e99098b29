"""The Cache page's charts: each second's hit rate and latency per strategy, from the figures
flushed every second, and the load-test runs of the window linked to their pages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from emissions.cache import BATCH, QUERY
from loadtests.models import LoadTestDefinition, LoadTestRun
from offgridperf import cache
from offgridperf.cache.pages import chart_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache() -> Iterator[None]:
    cache.clear_all()
    yield
    cache.reset_process_state()


def page_data(response: Any) -> dict[str, Any]:
    body = response.content.decode()
    start = body.index('id="cache-history-data"')
    text = body[body.index(">", start) + 1 : body.index("</script>", start)]
    return json.loads(text)


def by_name(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {strategy["name"]: strategy["points"] for strategy in data["strategies"]}


def test_it_records_each_seconds_hits_and_misses_in_redis() -> None:
    assert cache.uses_redis()
    BATCH.set("a", 1)
    BATCH.get("a")
    BATCH.get("a")
    BATCH.get("missing")
    points = by_name(chart_data())["batch"]
    assert sum(point["lookups"] for point in points) == 3
    last = points[-1]
    assert last["hit_rate"] is not None and last["p99_ms"] is not None
    hits = sum(p["lookups"] * p["hit_rate"] / 100 for p in points if p["hit_rate"] is not None)
    assert round(hits) == 2


def test_it_keeps_the_seconds_apart() -> None:
    BATCH.get("x")  # a miss, flushed into this second
    cache.flush_metrics()
    first = int(time.time())
    while int(time.time()) == first:  # the next second starts; no timing is asserted
        time.sleep(0.05)
    BATCH.set("y", 1)
    BATCH.get("y")
    cache.flush_metrics()
    points = by_name(chart_data())["batch"]
    assert len(points) >= 2
    assert points[0]["hit_rate"] == 0.0
    assert points[-1]["hit_rate"] == 100.0
    assert [p["t"] for p in points] == sorted(p["t"] for p in points)


def test_it_leaves_out_what_is_older_than_the_window() -> None:
    QUERY.get("k")
    later = time.time() + cache.HISTORY_S + 5
    assert by_name(chart_data(now=later))["query"] == []


def test_reset_metrics_clears_the_history() -> None:
    QUERY.get("k")
    cache.reset_metrics()
    assert by_name(chart_data())["query"] == []


def test_it_keeps_history_in_the_process_without_redis(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.reset_process_state()
    assert not cache.uses_redis()
    QUERY.set("k", 1)
    QUERY.get("k")
    points = by_name(chart_data())["query"]
    assert [p["hit_rate"] for p in points] == [100.0]


def test_the_page_draws_a_chart_per_strategy_and_links_the_runs(
    viewer_client: Any,
) -> None:
    definition = LoadTestDefinition.objects.create(
        name="cached", target_base_url="http://127.0.0.1:8001"
    )
    now = timezone.now()
    going = LoadTestRun.objects.create(
        definition=definition, name="going", config={}, status="running", started_at=now
    )
    done = LoadTestRun.objects.create(
        definition=definition,
        name="done",
        config={},
        status="passed",
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=1),
    )
    LoadTestRun.objects.create(  # over before the window: not on the timeline
        definition=definition,
        name="old",
        config={},
        status="passed",
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=1),
    )
    BATCH.get("missing")
    response = viewer_client.get("/cache/")
    assert response.status_code == 200
    body = response.content.decode()
    data = page_data(response)
    assert {s["name"] for s in data["strategies"]} >= {"batch", "query", "activity"}
    assert 'id="cache-chart-batch"' in body
    assert "offgridperf/cache.js" in body
    assert [run["id"] for run in data["runs"]] == [done.pk, going.pk]
    assert data["runs"][1]["end"] is None
    for run in (going, done):
        assert f'href="/runs/{run.pk}/"' in body
    assert " old</a>" not in body
