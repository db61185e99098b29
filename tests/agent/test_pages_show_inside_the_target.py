"""The run page and the compare page show what the agent measured, per step; a run without it
says how to install it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from loadtests import agentfigures, agentpage
from loadtests.models import LoadTestDefinition, LoadTestRun
from tests.loadtests.test_compare_without_data import finished_run, step

pytestmark = pytest.mark.django_db

N_PLUS_ONE = {"fingerprint": "c056a870b5bf43e0", "view": "emissions.views.batch_list",
              "frame": "emissions.views.batch_list:40", "sql": "SELECT ...", "requests": 10,
              "count": 18}  # fmt: skip


def message(step_name: str, *, queries: int, db_us: int, n_plus_one: bool = False) -> dict:
    """What the agent publishes for 10 requests of one step in one second."""
    return {
        "run": 0, "step": step_name, "second": int(time.time()) - 5, "requests": 10,
        "server_us": 10 * 50_000, "cpu_us": 10 * 20_000, "db_us": 10 * db_us,
        "queries": 10 * queries, "queries_max": queries, "cache_calls": 10, "cache_us": 500,
        "server_hist": {"20000": 10}, "db_hist": {"5000": 10}, "statuses": {"200": 10},
        "views": {"emissions.views.batch_list": 10},
        "sql": [{"fingerprint": "c056a870b5bf43e0", "count": 10 * queries, "total_us": 1000,
                 "sql": "SELECT \"batch\".\"id\" FROM \"batch\" WHERE id = %s"}],
        "n_plus_one": [N_PLUS_ONE] if n_plus_one else [],
    }  # fmt: skip


def with_agent(run: LoadTestRun, **figures: Any) -> LoadTestRun:
    agentfigures.store(run.pk, [message("list", **figures)])
    agentfigures.summarise(run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def definition(db: Any) -> LoadTestDefinition:
    return LoadTestDefinition.objects.create(name="batches", target_base_url="http://127.0.0.1:1")


def test_the_run_page_shows_server_time_queries_and_the_n_plus_one(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = with_agent(finished_run(definition, {"list": step(10)}), queries=19, db_us=30_000,
                     n_plus_one=True)  # fmt: skip
    stats = run.steps_summary["list"]
    assert (stats["queries_per_request"], stats["db_ms_mean"]) == (19, 30.0)
    assert stats["n_plus_one"] == [
        {key: N_PLUS_ONE[key] for key in ("fingerprint", "view", "frame", "count")}
    ]

    body = admin_client.get(f"/runs/{run.pk}/").content.decode()

    assert 'id="agent-steps"' in body
    assert "emissions.views.batch_list:40" in body and "N+1" in body
    assert 'class="split-db"' in body
    assert f"/queries/runs/{run.pk}/statements/c056a870b5bf43e0/" in body
    # The client-side table keeps its own columns only.
    assert "server p50 ms" not in body


def test_a_run_without_the_agent_says_how_to_install_it(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = finished_run(definition, {"list": step(10)})
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="agent-missing"' in body and agentpage.DOCS_PATH in body


def test_the_compare_page_names_the_step_and_the_n_plus_one_behind_a_regression(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    before = with_agent(finished_run(definition, {"list": step(10)}), queries=1, db_us=2_000)
    after = with_agent(finished_run(definition, {"list": step(10, p95=80.0)}), queries=19,
                       db_us=30_000, n_plus_one=True)  # fmt: skip
    LoadTestRun.objects.filter(pk=after.pk).update(latency_p95_ms=80.0, latency_p50_ms=40.0)

    response = admin_client.get(f"/runs/compare/?a={before.pk}&b={after.pk}")

    body = response.content.decode()
    assert response.context["verdict"].outcome == "regression"
    assert "Step list: +18 queries per request: N+1 in emissions.views.batch_list." in body
    [row] = response.context["agent_step_deltas"]
    assert [cell["delta"] for cell in row["cells"]][1:] == [28.0, 18.0]
