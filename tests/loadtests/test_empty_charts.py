"""A run without data says so where its charts would be, instead of drawing empty axes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from loadtests.models import LoadTestDefinition, RunStatus
from tests.loadtests.test_dashboard import add_intervals, make_run

pytestmark = pytest.mark.django_db

TIME_CHARTS = ("chart-throughput", "chart-latency", "chart-load")
HISTOGRAM_CHARTS = ("chart-distribution", "chart-spectrum")


def chart_state(body: str, canvas: str) -> tuple[bool, str | None]:
    """(is the chart's box hidden, the message shown in its place or None)."""
    box = re.search(rf'<div class="chart-box"( hidden)?><canvas id="{canvas}">', body)
    assert box, canvas
    note = re.search(
        rf'class="[^"]*chart-empty[^"]*" data-empty-for="{canvas}"( hidden)?>([^<]*)<', body
    )
    assert note, canvas
    return bool(box.group(1)), None if note.group(1) else note.group(2)


def test_a_finished_run_without_requests_says_so_instead_of_empty_charts(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(
        definition,
        status=RunStatus.ERROR,
        requests=0,
        errors=0,
        latency_histogram="",
        service_histogram="",
        latency_p50_ms=None,
        latency_p95_ms=None,
        latency_p99_ms=None,
    )
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    for canvas in TIME_CHARTS + HISTOGRAM_CHARTS:
        assert chart_state(body, canvas) == (True, "No requests recorded."), canvas


def test_a_running_run_before_its_first_second_says_no_data_yet(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING, requests=0, latency_histogram="")
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    for canvas in TIME_CHARTS:
        hidden, text = chart_state(body, canvas)
        assert hidden and text and text.startswith("No data yet"), canvas
    for canvas in HISTOGRAM_CHARTS:
        assert chart_state(body, canvas) == (True, "Drawn when the run ends."), canvas


def test_a_run_with_data_draws_its_charts(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition)
    add_intervals(run, 5)
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    for canvas in TIME_CHARTS + HISTOGRAM_CHARTS:
        assert chart_state(body, canvas) == (False, None), canvas


def test_compare_says_when_neither_run_has_data_to_draw(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    empty = {"requests": 0, "latency_histogram": "", "service_histogram": ""}
    a = make_run(definition, status=RunStatus.ERROR, **empty)
    b = make_run(definition, status=RunStatus.ERROR, **empty)
    body = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    for canvas in ("compare-spectrum", "compare-p95"):
        assert f'<canvas id="{canvas}">' not in body
        assert f'data-empty-for="{canvas}">No requests recorded.<' in body
    drawn = make_run(definition)
    add_intervals(drawn, 5)
    body = admin_client.get(f"/runs/compare/?a={a.pk}&b={drawn.pk}").content.decode()
    assert '<canvas id="compare-spectrum">' in body and '<canvas id="compare-p95">' in body


def test_a_definition_whose_runs_recorded_nothing_says_so_instead_of_empty_charts(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    make_run(
        definition, status=RunStatus.ERROR, requests=0, throughput_rps=0.0, error_rate_pct=None,
        latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None, passed=None,
    )  # fmt: skip
    page = admin_client.get(f"/definitions/{definition.pk}/").content.decode()
    assert 'id="history-latency"' not in page
    assert 'id="history-empty">No requests recorded in its finished runs.<' in page
    overview = admin_client.get("/").content.decode()
    assert f'data-trend="{definition.pk}"' not in overview
    assert f'data-trend-empty="{definition.pk}">no requests recorded<' in overview

    make_run(definition)
    assert (
        'id="history-latency"'
        in admin_client.get(f"/definitions/{definition.pk}/").content.decode()
    )
    assert f'data-trend="{definition.pk}"' in admin_client.get("/").content.decode()
