"""A run that ends by being reaped (its worker silent, or restarted) keeps what the agent in the
target measured: every step's figures land in its summary, as they do for a run that ran to its
end."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone
from offgridperf_agent import publish
from offgridperf_agent.aggregate import RequestFigures

from loadtests import agentfigures, lifecycle, reports, services
from loadtests.models import AgentSecond, LoadTestDefinition, LoadTestRun, LoadTestStep

pytestmark = pytest.mark.django_db

SELECT_AUTHOR = 'SELECT "shop_author"."name" FROM "shop_author" WHERE "shop_author"."id" = %s'


def books_request() -> RequestFigures:
    """A request of the N+1 view as the agent measures it: 1 + 20 queries."""
    return RequestFigures(
        server_ns=12_000_000, cpu_ns=6_000_000, cache_calls=0, cache_ns=0,
        view="shop.views.book_list", status=200,
        statements={'SELECT "shop_book"."id" FROM "shop_book"': [1, 400_000],
                    SELECT_AUTHOR: [20, 3_600_000]},
        frames={SELECT_AUTHOR: "shop.views.book_list:12"},
    )  # fmt: skip


def published(run_id: int, seconds: list[int], redis_url: str) -> None:
    """The agent's own aggregation and publishing: 10 requests of each second, pushed to the
    run's Redis list in one pipeline."""
    publisher = publish.Publisher(redis_url)
    publisher.stop()  # its thread: this test pushes when it says so
    for second in seconds:
        for _ in range(10):
            publisher.aggregator.record(run_id, "list books", second, books_request())
    publisher.publish()


def running_run(definition: LoadTestDefinition, *, silent_for_s: float, node: str = "") -> Any:
    run = services.create_run(definition)
    beat = timezone.now() - timedelta(seconds=silent_for_s)
    LoadTestRun.objects.filter(pk=run.pk).update(
        status="running", started_at=beat - timedelta(seconds=5), heartbeat_at=beat,
        worker_node=node,
    )  # fmt: skip
    return run


@pytest.fixture
def agent_redis(settings: Any) -> str:
    settings.OFFGRIDPERF_AGENT_REDIS_URL = settings.REDIS_URL
    return settings.REDIS_URL


@pytest.fixture
def definition(db: Any) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="shop", target_base_url="http://127.0.0.1:1"
    )
    LoadTestStep.objects.create(definition=definition, name="list books", path="/books")
    return definition


def test_a_run_reaped_for_silence_keeps_the_agent_figures_in_its_summary(
    definition: LoadTestDefinition, agent_redis: str
) -> None:
    run = running_run(definition, silent_for_s=lifecycle.HEARTBEAT_STALE_S + 1)
    now = int(time.time())
    published(run.pk, [now - 20, now - 19, now - 18], agent_redis)

    assert lifecycle.reap_stale_runs() == [run.pk]

    run.refresh_from_db()
    assert run.status == "interrupted"
    books = reports.summary_dict(run)["steps"]["list books"]
    assert books["agent_requests"] == 30
    assert books["queries_per_request"] == 21
    assert books["server_p50_ms"] == pytest.approx(12.0, rel=0.01)
    [n_plus_one] = books["n_plus_one"]
    assert (n_plus_one["count"], n_plus_one["view"]) == (20, "shop.views.book_list")
    assert books["top_sql"][0]["sql"] == SELECT_AUTHOR
    # Everything was taken from Redis.
    assert not redis.Redis.from_url(agent_redis).exists(publish.run_key(run.pk))


def test_a_run_its_restarted_worker_reaps_keeps_the_seconds_collected_before_and_after(
    definition: LoadTestDefinition, agent_redis: str
) -> None:
    run = running_run(definition, silent_for_s=1, node="loadgen@gone")
    now = int(time.time())
    published(run.pk, [now - 4, now - 3], agent_redis)
    agentfigures.collect(run.pk)  # what the worker collected while the run went
    published(run.pk, [now - 2], agent_redis)  # the last second, never collected by it

    assert lifecycle.reap_node_runs("loadgen@gone") == [run.pk]

    run.refresh_from_db()
    assert run.status == "interrupted"
    assert AgentSecond.objects.filter(run=run).count() == 3
    assert run.steps_summary["list books"]["agent_requests"] == 30
    assert run.steps_summary["list books"]["queries_max"] == 21


@pytest.mark.django_db(transaction=True)
def test_the_figures_of_a_run_deleted_before_they_are_stored_are_dropped_without_an_error(
    definition: LoadTestDefinition, agent_redis: str
) -> None:
    # A worker restarting reaps the runs it left, while someone deletes one of them (a test's
    # teardown emptied the tables here): the figures' rows cannot be committed for a run
    # that is gone, and that must not stop the worker's start.
    run = running_run(definition, silent_for_s=0)
    now = int(time.time())
    published(run.pk, [now - 3, now - 2], agent_redis)
    run_id = run.pk
    run.delete()

    agentfigures.store_at_end(run_id, wait_s=0)

    assert not AgentSecond.objects.filter(run_id=run_id).exists()
    assert not redis.Redis.from_url(agent_redis).exists(publish.run_key(run_id))
