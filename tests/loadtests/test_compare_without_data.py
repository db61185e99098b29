"""A compared figure without data on one side gets no verdict: no percentage, no colour."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests import compare
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from stats.histogram import histogram_of
from tests.loadtests.test_dashboard import page_json

pytestmark = pytest.mark.django_db


def step(requests: int, p95: float = 40.0, errors: int = 0) -> dict[str, Any]:
    # What the engine stores for a step: a step that sent nothing has zero percentiles.
    scale = 1.0 if requests else 0.0
    return {
        "requests": requests, "errors": errors, "p50_ms": p95 / 2 * scale,
        "p95_ms": p95 * scale, "p99_ms": p95 * 1.5 * scale,
    }  # fmt: skip


def finished_run(
    definition: LoadTestDefinition, steps: dict[str, Any], *, requests: int = 6000
) -> LoadTestRun:
    """A run as the lifecycle stores it: a run that sent nothing has no percentiles, 0 req/s and
    an error rate of 0."""
    now = timezone.now()
    figures: dict[str, Any] = {
        "requests": requests, "errors": 0, "duration_s": 60.0,
        "throughput_rps": requests / 60.0, "error_rate_pct": 0.0,
    }  # fmt: skip
    if requests:
        latency = histogram_of([10_000, 20_000, 40_000])
        figures.update(
            latency_p50_ms=20.0, latency_p95_ms=40.0, latency_p99_ms=40.0,
            latency_histogram=latency.encode(),
        )  # fmt: skip
    return LoadTestRun.objects.create(
        definition=definition, name=definition.name, config={}, status=RunStatus.PASSED,
        passed=True, started_at=now - timedelta(seconds=60), finished_at=now,
        steps_summary=steps, **figures,
    )  # fmt: skip


@pytest.fixture
def uploads(db: Any) -> LoadTestDefinition:
    return LoadTestDefinition.objects.create(
        name="uploads", target_base_url="http://127.0.0.1:9", users=1, duration_s=60
    )


def change_cells(body: str, table: str) -> list[str]:
    section = body.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<td class="num([^"]*)">((?:(?!</td>).)*)</td>', section, re.S)


def test_a_step_without_requests_in_this_run_has_no_verdict(
    admin_client: Any, uploads: LoadTestDefinition
) -> None:
    a = finished_run(uploads, {"upload": step(500), "status": step(500)})
    b = finished_run(uploads, {"upload": step(500, p95=30.0), "status": step(0)})
    response = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 200
    rows = {row["step"]: row for row in response.context["step_deltas"]}
    for cell in rows["status"]["cells"]:
        assert cell["change_pct"] is None and cell["better"] is None
        assert cell["no_data"] == "no data in this run"
    assert rows["upload"]["cells"][1]["change_pct"] == -25.0  # a real improvement stays
    body = response.content.decode()
    assert "-100.0%" not in body
    assert body.count("no data in this run") == len(compare.STEP_METRICS)


def test_a_step_without_requests_in_the_baseline_or_in_either_run_has_no_verdict(
    admin_client: Any, uploads: LoadTestDefinition
) -> None:
    a = finished_run(uploads, {"upload": step(0), "idle": step(0), "old": step(9)})
    b = finished_run(uploads, {"upload": step(500), "idle": step(0), "new": step(9)})
    response = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}")
    rows = {row["step"]: row for row in response.context["step_deltas"]}
    expected = {
        "upload": "no data in baseline",
        "idle": "no data in either run",
        "old": "no data in this run",
        "new": "no data in baseline",
    }
    for name, text in expected.items():
        assert {cell["no_data"] for cell in rows[name]["cells"]} == {text}, name
        assert {cell["better"] for cell in rows[name]["cells"]} == {None}, name
    for css, _ in change_cells(response.content.decode(), "step-deltas"):
        assert "better" not in css and "worse" not in css


def test_a_run_without_requests_is_not_compared_figure_by_figure(
    admin_client: Any, uploads: LoadTestDefinition
) -> None:
    a = finished_run(uploads, {"upload": step(500)})
    b = finished_run(uploads, {"upload": step(0)}, requests=0)
    response = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 200
    assert response.context["verdict"].outcome == "not comparable"
    assert "no data in this run" in " ".join(response.context["verdict"].reasons)
    for row in response.context["deltas"]:
        assert row["change_pct"] is None and row["better"] is None, row["key"]
        assert row["no_data"] == "no data in this run", row["key"]
    body = response.content.decode()
    assert "-100.0%" not in body
    for css, _ in change_cells(body, "deltas"):
        assert "better" not in css and "worse" not in css
    data = page_json(response, "compare-data")
    assert data["a"]["no_data"] is None and data["b"]["no_data"] == "no data in this run"

    response = admin_client.get(f"/runs/compare/?a={b.pk}&b={a.pk}")
    assert {row["no_data"] for row in response.context["deltas"]} == {"no data in baseline"}
    assert page_json(response, "compare-data")["a"]["no_data"] == "no data in baseline"


def test_a_rise_from_zero_errors_is_a_change_without_a_percentage() -> None:
    a = {"requests": 100, "latency_p95_ms": 10.0, "error_rate_pct": 0.0, "throughput_rps": 5.0}
    b = {"requests": 100, "latency_p95_ms": 10.0, "error_rate_pct": 2.0, "throughput_rps": 5.0}
    rows = {row["key"]: row for row in compare.deltas(a, b)}
    assert rows["error_rate_pct"]["change"] == 2.0
    assert rows["error_rate_pct"]["change_pct"] is None
    assert rows["error_rate_pct"]["better"] is False and rows["error_rate_pct"]["no_data"] is None
