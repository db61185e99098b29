"""A real browser (Debian's headless Chromium driven by Playwright) on the live dashboard:
log in, start a run from the definition page, watch it update live (on its page and on the
overview), compare it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, RunInterval, RunStatus
from stats.histogram import histogram_of
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium
from tests.targets import target_server

PASSWORD = "pw-browser-123"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def target_url() -> Iterator[str]:
    with target_server() as base_url:
        yield base_url


def seed(target_url: str, django_user_model: Any) -> tuple[LoadTestDefinition, LoadTestRun]:
    """A superuser, a short definition and an earlier passing run to compare with."""
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    definition = LoadTestDefinition.objects.create(
        name="browser smoke",
        target_base_url=target_url,
        load_model="closed",
        users=3,
        # Long enough for the overview, opened two seconds in, to read its bar growing twice
        # on a loaded machine.
        duration_s=8,
        timeout_s=2,
        threshold_p95_ms=2000,
    )
    LoadTestStep.objects.create(definition=definition, name="delay", path="/delay?ms=5", weight=3)
    LoadTestStep.objects.create(definition=definition, name="json", path="/json")
    histogram = histogram_of([4_000, 5_000, 6_000, 7_000, 30_000])
    started = timezone.now() - timedelta(hours=1)
    previous = LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={"load_model": "closed"},
        status=RunStatus.PASSED,
        passed=True,
        started_at=started,
        finished_at=started + timedelta(seconds=4),
        planned_duration_s=4,
        requests=5,
        duration_s=4,
        throughput_rps=1.25,
        error_rate_pct=0.0,
        latency_p50_ms=6.0,
        latency_p95_ms=30.0,
        latency_p99_ms=30.0,
        latency_histogram=histogram.encode(),
        service_histogram=histogram.encode(),
    )
    RunInterval.objects.bulk_create(
        RunInterval(run=previous, index=i, started_at=started, requests=1, latency_p95_ms=30.0)
        for i in range(4)
    )
    return definition, previous


def chart_points(page: Any, canvas_id: str, dataset: int = 0) -> int:
    """How many non-null points Chart.js holds for one dataset of a chart on the page."""
    return page.evaluate(
        """([id, index]) => {
            const chart = Chart.getChart(id);
            return chart.data.datasets[index].data.filter(
                (p) => p !== null && (typeof p !== "object" || p.y !== null)).length;
        }""",
        [canvas_id, dataset],
    )


# True once the run's bar on the overview is wider than at an earlier reading.
GROWING_BAR = """(runId) => {
    const bar = document.querySelector(`#running-rows tr[data-run="${runId}"] [data-field=bar]`);
    const width = bar ? parseFloat(bar.style.width) : 0;
    if (!(width > 0)) return false;
    if (window.firstWidth === undefined) window.firstWidth = width;
    return width > window.firstWidth;
}"""


def test_an_engineer_runs_watches_and_compares_in_a_real_browser(
    live_server: Any,
    celery_worker_process: Any,
    target_url: str,
    django_user_model: Any,
) -> None:
    definition, previous = seed(target_url, django_user_model)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    viewport = {"width": 1400, "height": 1000}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (
        page,
        _errors,
    ):
        page.goto(f"{base}/definitions/{definition.pk}/")
        page.click("#run-now")
        page.wait_for_url(f"{base}/runs/*/")
        run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        page.evaluate("window.notReloaded = true")

        page.wait_for_function(
            """() => document.getElementById('run-status').textContent === 'running'
                && Chart.getChart('chart-throughput').data.datasets[0].data.length >= 2"""
        )
        live_width = page.eval_on_selector("#progress-bar", "el => el.style.width")
        page.screenshot(path=str(SCREENSHOTS / "run-live.png"), full_page=True)

        # The overview's bar moves while the run page is watched too. Opened once the run is
        # running, so that the page lists it at once and polls every second: a page opened
        # while the run still waited for the worker looks for new runs only every 5 s.
        overview = page.context.new_page()
        overview.set_default_timeout(30_000)
        overview.goto(f"{base}/")
        overview.wait_for_function(GROWING_BAR, arg=run_id)
        overview.screenshot(path=str(SCREENSHOTS / "overview-live.png"))

        page.wait_for_selector("#run-page[data-state=finished]")
        assert page.evaluate("window.notReloaded") is True
        # The ended run leaves the panel and the reloaded page lists it among recent runs.
        overview.wait_for_selector("#running-now", state="hidden")
        overview_row = overview.text_content(f"table.runs tr:has(a[href='/runs/{run_id}/'])")
        assert page.text_content("#run-status") == "passed"
        assert chart_points(page, "chart-throughput") >= 3
        assert chart_points(page, "chart-latency", 1) >= 3  # p95 per second
        assert chart_points(page, "chart-load") >= 3
        assert chart_points(page, "chart-distribution") >= 1
        assert chart_points(page, "chart-spectrum") >= 10
        assert page.is_visible("#percentiles") and page.is_visible("#thresholds")
        page.check("#toggle-service")
        page.screenshot(path=str(SCREENSHOTS / "run-finished.png"), full_page=True)

        page.click("#compare-link")
        page.wait_for_selector("#verdict")
        verdict = page.text_content("#verdict").strip()
        heading = page.text_content(".card h2")
        assert chart_points(page, "compare-spectrum", 0) >= 1
        assert chart_points(page, "compare-spectrum", 1) >= 10
        assert chart_points(page, "compare-p95", 1) >= 3
        page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)

        page.goto(f"{base}/definitions/{definition.pk}/")
        assert chart_points(page, "history-latency", 1) == 2  # p95 of both runs
        page.screenshot(path=str(SCREENSHOTS / "definition.png"), full_page=True)
        page.goto(f"{base}/")
        assert page.evaluate("document.querySelectorAll('canvas[data-trend]').length") == 1
        page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    run = LoadTestRun.objects.get(pk=run_id)
    assert run.status == RunStatus.PASSED and run.requests > 0
    assert live_width.endswith("%")
    assert "passed" in overview_row
    assert f"#{run.pk} against #{previous.pk}" in " ".join(heading.split())
    assert verdict.split()[0] in {"Regression", "Improvement", "No", "Inconclusive"}
