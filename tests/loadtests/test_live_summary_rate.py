"""A running run's summary shows the rate achieved so far and how long it has run, never
"– req/s": from the seconds stored, all shards added up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, RunInterval, RunStatus
from tests.loadtests.test_dashboard import add_intervals, make_run

pytestmark = pytest.mark.django_db


def summary_row(html: str) -> str:
    return html.split('id="stat-throughput"', 1)[1].split("</tr>", 1)[0]


def test_a_running_run_shows_its_rate_and_time_so_far(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(
        definition,
        status=RunStatus.RUNNING,
        requests=1000,
        throughput_rps=None,
        duration_s=None,
        started_at=timezone.now() - timedelta(seconds=10),
    )
    add_intervals(run, 10)  # 100 requests in each of 10 seconds
    page = summary_row(admin_client.get(f"/runs/{run.pk}/").content.decode())
    assert "100.0 req/s" in page and "so far" in page and "–" not in page
    # A second shard's seconds add to the rate; the page's poll renders the same summary.
    RunInterval.objects.bulk_create(
        RunInterval(run=run, shard=1, index=i, started_at=run.started_at, requests=50)
        for i in range(10)
    )
    live = admin_client.get(f"/runs/{run.pk}/live/?after=9").json()
    assert "150.0 req/s" in summary_row(live["live_summary_html"])


def test_a_running_run_with_no_second_stored_yet_says_so(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(
        definition, status=RunStatus.RUNNING, requests=0, throughput_rps=None, duration_s=None
    )
    page = summary_row(admin_client.get(f"/runs/{run.pk}/").content.decode())
    assert "no second stored yet" in page and "– req/s" not in page


def test_a_finished_run_shows_its_final_rate(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition)
    page = summary_row(admin_client.get(f"/runs/{run.pk}/").content.decode())
    assert "100.0 req/s" in page and "so far" not in page
