from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.conf import settings

from loadtests import charts
from loadtests.models import LoadTestDefinition, RunStatus
from tests.loadtests.test_dashboard import add_intervals, make_run

pytestmark = pytest.mark.django_db


def page_data(admin_client: Any, run_id: int) -> dict[str, Any]:
    html = admin_client.get(f"/runs/{run_id}/").content.decode()
    found = re.search(r'<script id="run-data" type="application/json">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def test_the_page_and_the_live_endpoint_send_one_shape_of_series(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING)
    add_intervals(run, 4)
    first = page_data(admin_client, run.pk)["timeline"]
    live = admin_client.get(f"/runs/{run.pk}/live/?after=1").json()["timeline"]
    assert set(live) == set(first)
    assert {name: set(entry) for name, entry in live["series"].items()} == {
        name: set(entry) for name, entry in first["series"].items()
    }
    assert live["x"] == first["x"][2:]
    assert live["series"]["p99"]["mean"] == first["series"]["p99"]["mean"][2:]


def test_the_page_takes_its_page_size_from_python(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING)
    add_intervals(run, charts.MAX_POINTS + 5)
    assert page_data(admin_client, run.pk)["max_points"] == charts.MAX_POINTS
    state = admin_client.get(f"/runs/{run.pk}/live/").json()
    assert len(state["timeline"]["x"]) == charts.MAX_POINTS
    assert state["last_index"] == charts.MAX_POINTS - 1
    rest = admin_client.get(f"/runs/{run.pk}/live/?after={state['last_index']}").json()
    assert len(rest["timeline"]["x"]) == 5
    script = settings.BASE_DIR / "static" / "loadtests" / "run.js"
    assert str(charts.MAX_POINTS) not in script.read_text()
