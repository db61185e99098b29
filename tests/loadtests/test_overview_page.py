"""The overview: sparklines, one source of truth for running runs, the trigger column and
its filter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus, RunTrigger
from tests.loadtests.test_dashboard import make_run, page_json

pytestmark = pytest.mark.django_db


def row_of(body: str, run: LoadTestRun) -> str:
    """The recent-runs row of `run` (its link opens the row)."""
    table = body.split('<table class="runs">', 1)[1]
    return table.split(f'<a href="/runs/{run.pk}/">{run.pk}</a>', 1)[1].split("</tr>", 1)[0]


# -- overview -------------------------------------------------------------------------------


def test_it_sends_the_single_point_of_a_definition_with_one_run(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    only = make_run(definition, p95=33.0)
    response = admin_client.get("/")
    assert page_json(response, "trend-data")[str(definition.pk)] == [
        {"id": only.pk, "p95": 33.0, "passed": True, "status": "passed"}
    ]
    assert f'data-trend="{definition.pk}"' in response.content.decode()


def test_it_shows_a_running_run_from_one_read_in_both_panels(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    running = make_run(definition, status=RunStatus.RUNNING, requests=1234)
    make_run(definition)
    response = admin_client.get("/")
    (shown,) = response.context["running"]
    listed = [run for run in response.context["runs"] if run.pk == running.pk]
    assert listed == [shown] and listed[0] is shown
    body = response.content.decode()
    assert "running" in row_of(body, running) and "1234" in row_of(body, running)


def test_a_queued_run_past_its_timeout_is_error_in_recent_runs_and_not_running(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    stale = make_run(definition, status=RunStatus.QUEUED, started_at=None, requests=0)
    LoadTestRun.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
    response = admin_client.get("/")
    assert response.context["running"] == []
    assert "badge error" in row_of(response.content.decode(), stale)


def test_it_shows_each_runs_trigger_and_filters_on_it(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    runs = {trigger: make_run(definition, trigger=trigger) for trigger in RunTrigger.values}
    body = admin_client.get("/").content.decode()
    assert '<td data-field="trigger">schedule</td>' in row_of(body, runs["schedule"])
    assert '<td data-field="trigger">API</td>' in row_of(body, runs["api"])
    assert '<td data-field="trigger">CLI</td>' in row_of(body, runs["cli"])
    assert '<select name="trigger"' in body
    for trigger, run in runs.items():
        response = admin_client.get(f"/?trigger={trigger}")
        assert [r.pk for r in response.context["runs"]] == [run.pk]


def test_a_bad_trigger_filter_names_the_field_and_the_rule(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    make_run(definition)
    response = admin_client.get("/?trigger=cron")
    assert response.status_code == 400
    assert "trigger: Give one of manual, schedule, cli, api (or nothing for any)." in (
        response.content.decode()
    )
    assert len(response.context["runs"]) == 1  # the filter is left out, not the page
