"""A real run against a third-party Django project served by gunicorn, the agent pip-installed:
each step gets its own server, database and query figures, and the N+1 is named."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests import lifecycle, reports, services
from loadtests.models import AgentSecond, LoadTestDefinition, LoadTestStep
from tests.agent.conftest import Shop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def python_share(step: dict[str, Any]) -> float:
    return (step["server_ms_mean"] - step["db_ms_mean"]) / step["server_ms_mean"]


def db_share(step: dict[str, Any]) -> float:
    return step["db_ms_mean"] / step["server_ms_mean"]


def test_a_run_attributes_the_n_plus_one_and_the_time_shares_to_their_steps(
    shop: Shop, settings: Any
) -> None:
    settings.OFFGRIDPERF_AGENT_KEY = shop.key
    settings.OFFGRIDPERF_AGENT_REDIS_URL = shop.redis_url
    definition = LoadTestDefinition.objects.create(
        name="shop", target_base_url=shop.url, load_model="closed", users=2, duration_s=4,
        timeout_s=5, threshold_error_rate_pct=1,
    )  # fmt: skip
    for name, path in (("list books", "/books"), ("checksum", "/checksum"), ("report", "/report")):
        LoadTestStep.objects.create(definition=definition, name=name, path=path)

    run = lifecycle.execute(services.create_run(definition).pk)

    run.refresh_from_db()
    steps = reports.summary_dict(run)["steps"]
    books, checksum, report = steps["list books"], steps["checksum"], steps["report"]
    assert books["agent_requests"] >= 3, steps
    assert books["queries_per_request"] == 21  # the books, then one author per book
    assert books["queries_max"] == 21
    [n_plus_one] = books["n_plus_one"]
    assert n_plus_one["count"] == 20
    assert n_plus_one["view"] == "shop.views.book_list"
    assert n_plus_one["frame"].startswith("shop.views.<listcomp>:") or n_plus_one[
        "frame"
    ].startswith("shop.views.book_list:")
    assert checksum["n_plus_one"] == [] and report["n_plus_one"] == []
    assert (checksum["queries_per_request"], report["queries_per_request"]) == (0, 1)
    assert checksum["cache_calls_per_request"] == 1
    assert db_share(report) > 0.5 > db_share(checksum)
    assert python_share(checksum) > 0.5 > python_share(report)
    assert report["top_sql"][0]["sql"].startswith("WITH RECURSIVE")
    for name in ("server_p50_ms", "server_p95_ms", "db_ms_mean", "queries_per_request"):
        assert all(isinstance(step[name], int | float) for step in steps.values()), name
    assert set(AgentSecond.objects.filter(run=run).values_list("step", flat=True)) == set(steps)


def test_a_definition_can_turn_tagging_off(shop: Shop, settings: Any) -> None:
    settings.OFFGRIDPERF_AGENT_KEY = shop.key
    settings.OFFGRIDPERF_AGENT_REDIS_URL = shop.redis_url
    definition = LoadTestDefinition.objects.create(
        name="untagged", target_base_url=shop.url, load_model="closed", users=1, duration_s=1,
        timeout_s=5, agent_tagging=False,
    )  # fmt: skip
    LoadTestStep.objects.create(definition=definition, name="list books", path="/books")

    run = lifecycle.execute(services.create_run(definition).pk)

    assert run.requests > 0
    assert not AgentSecond.objects.filter(run=run).exists()
    assert "server_p50_ms" not in run.steps_summary["list books"]
