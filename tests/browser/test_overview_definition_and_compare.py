"""A real browser on the overview, definition and compare pages: a definition with
one run draws its single point, the trigger filter narrows the list, the definition's charts
carry labelled limit lines, and runs are compared by picking them from lists, with a verdict
that says when there is not enough history. Saves full-page screenshots at 1400 px."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus, RunTrigger
from stats.histogram import histogram_of
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium

PASSWORD = "pw-browser-456"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

# The drawn radius of each point of a chart's first dataset, and its legend's texts.
POINT_RADII = """(id) => {
    const chart = Chart.getChart(document.querySelector(id));
    return chart.getDatasetMeta(0).data.map((point) => point.options.radius);
}"""
LEGEND = (
    """(id) => Chart.getChart(document.getElementById(id)).legend.legendItems.map((i) => i.text)"""
)


def run_of(definition: LoadTestDefinition, minutes_ago: int, **fields: Any) -> LoadTestRun:
    p95 = fields.pop("p95", 20.0)
    status = fields.pop("status", RunStatus.PASSED)
    histogram = histogram_of([5_000, 10_000, int(p95 * 1000), 40_000])
    at = timezone.now() - timedelta(minutes=minutes_ago)
    run = LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={"load_model": "closed"},
        status=status,
        passed=status == RunStatus.PASSED,
        started_at=at,
        finished_at=at + timedelta(seconds=60),
        planned_duration_s=60,
        duration_s=60.0,
        requests=6000,
        errors=6,
        throughput_rps=100.0,
        error_rate_pct=fields.pop("error_rate_pct", 0.1),
        latency_p50_ms=p95 / 2,
        latency_p95_ms=p95,
        latency_p99_ms=p95 * 1.5,
        latency_histogram=histogram.encode(),
        service_histogram=histogram.encode(),
        steps_summary={
            "home": {"requests": 4000, "errors": 2, "p50_ms": 5, "p95_ms": p95, "p99_ms": p95},
            "search": {"requests": 2000, "errors": 4, "p50_ms": 9, "p95_ms": p95, "p99_ms": p95},
        },
        **fields,
    )
    LoadTestRun.objects.filter(pk=run.pk).update(created_at=at)
    return run


def test_an_engineer_reads_overview_definition_and_compare_in_a_real_browser(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    lone = LoadTestDefinition.objects.create(name="lone", target_base_url="http://127.0.0.1:1")
    lone_run = run_of(lone, 50, trigger=RunTrigger.CLI)
    checkout = LoadTestDefinition.objects.create(
        name="checkout",
        target_base_url="http://127.0.0.1:1",
        threshold_p95_ms=50,
        threshold_p99_ms=90,
        threshold_error_rate_pct=1,
    )
    baseline = run_of(checkout, 40, p95=20.0, trigger=RunTrigger.SCHEDULE)
    later = run_of(checkout, 30, p95=21.0, trigger=RunTrigger.API)
    failed = run_of(checkout, 20, p95=70.0, status=RunStatus.FAILED, error_rate_pct=2.0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    viewport = {"width": 1400, "height": 900}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (
        page,
        errors,
    ):
        # Overview: the lone run is a visible point; each run names its trigger.
        radii = page.evaluate(POINT_RADII, f'canvas[data-trend="{lone.pk}"]')
        assert len(radii) == 1 and radii[0] > 0
        triggers = page.locator('table.runs td[data-field="trigger"]').all_inner_texts()
        assert sorted(triggers) == ["API", "CLI", "manual", "schedule"]
        page.screenshot(path=str(SCREENSHOTS / "overview-trend-and-trigger.png"), full_page=True)
        page.select_option('select[name="trigger"]', "cli")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**trigger=cli**")
        links = page.locator("table.runs tbody tr td:first-child a").all_inner_texts()
        assert links == [str(lone_run.pk)]

        # Definition page: the limits are drawn and labelled in the legends.
        page.goto(f"{base}/definitions/{checkout.pk}/")
        assert "p95 limit (ms) 50" in page.evaluate(LEGEND, "history-latency")
        assert "p99 limit (ms) 90" in page.evaluate(LEGEND, "history-latency")
        assert "error-rate limit (%) 1" in page.evaluate(LEGEND, "history-errors")
        page.screenshot(path=str(SCREENSHOTS / "definition-limits.png"), full_page=True)

        # The first run has no baseline: nothing offers to compare it with one.
        page.goto(f"{base}/runs/{baseline.pk}/")
        assert page.locator("#compare-link").count() == 0

        # Compare: pick from grouped lists; one baseline run is not enough history.
        page.goto(f"{base}/runs/compare/")
        assert page.locator('#pick-a optgroup[label="checkout"] option').count() == 3
        page.select_option("#pick-a", str(baseline.pk))
        page.select_option("#pick-b", str(later.pk))
        page.click("form.filters button[type=submit]")
        page.wait_for_selector("#verdict")
        verdict = page.inner_text("#verdict")
        assert "Inconclusive" in verdict and "not enough history to judge noise" in verdict
        assert page.locator("#step-deltas tbody tr").count() == 2
        assert page.input_value("#pick-a") == str(baseline.pk)
        page.screenshot(path=str(SCREENSHOTS / "compare-pickers.png"), full_page=True)
        page.select_option("#pick-b", str(failed.pk))
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**b={failed.pk}**")
        assert "Regression" in page.inner_text("#verdict")
        assert errors == []
