"""The definition page's history charts carry the definition's limits, or say it has none."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.models import LoadTestDefinition, RunStatus
from tests.loadtests.test_dashboard import make_run, page_json

pytestmark = pytest.mark.django_db


# -- definition page -----------------------------------------------------------------------


def test_the_history_charts_carry_the_definitions_limits(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    LoadTestDefinition.objects.filter(pk=definition.pk).update(
        threshold_p99_ms=250, threshold_min_throughput_rps=50
    )
    make_run(definition, error_rate_pct=0.5)
    make_run(definition, status=RunStatus.FAILED, error_rate_pct=3.0)
    response = admin_client.get(f"/definitions/{definition.pk}/")
    history = page_json(response, "history-data")
    assert history["limits"] == {"p95": 1000, "p99": 250, "error_rate": 1, "throughput_rps": 50}
    assert history["error_rate"] == [0.5, 3.0]
    body = response.content.decode()
    assert 'id="history-errors"' in body and "Dashed lines: the test's current limits." in body


def test_a_definition_without_limits_says_so_under_its_charts(admin_client: Any) -> None:
    bare = LoadTestDefinition.objects.create(name="bare", target_base_url="http://127.0.0.1:1")
    make_run(bare)
    response = admin_client.get(f"/definitions/{bare.pk}/")
    assert page_json(response, "history-data")["limits"] == dict.fromkeys(
        ("p95", "p99", "error_rate", "throughput_rps")
    )
    assert "current limits (none set)." in response.content.decode()
