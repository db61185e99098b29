"""A run's HTML report opens in Chromium from a file with the network cut off, and its
charts draw: everything it needs (styles, Chart.js, its script, the data) is inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtests import lifecycle, runreports, services
from loadtests.models import LoadTestDefinition, LoadTestStep, RunStatus
from tests.browser.session import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, needs_chromium
from tests.targets import target_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), needs_chromium]

CHARTS = ("chart-percentiles", "chart-throughput", "chart-distribution")
# Pixels of a canvas that something was painted on.
PAINTED = """(id) => {
    const canvas = document.getElementById(id);
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    return painted;
}"""


def test_the_html_report_draws_its_charts_offline_from_a_file(tmp_path: Path) -> None:
    with target_server() as base_url:
        definition = LoadTestDefinition.objects.create(
            name="report offline", target_base_url=base_url, load_model="open", rate_rps=50,
            duration_s=2, timeout_s=2, threshold_p95_ms=0.001,
        )  # fmt: skip
        LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
        run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == RunStatus.FAILED  # the report is written for a failed run too
    report = tmp_path / "run.html"
    report.write_text(runreports.html_report(run), encoding="utf-8")

    from playwright.sync_api import sync_playwright

    # No ORM below: Playwright's sync API runs an event loop.
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(offline=True)
            context.route("**/*", lambda route: _only_the_file(route, requested))
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri())
            page.wait_for_selector("body[data-charts-drawn=yes]")
            drawn = {chart: page.evaluate(f"() => Boolean(Chart.getChart('{chart}'))")
                     for chart in CHARTS}  # fmt: skip
            painted = {chart: page.evaluate(PAINTED, chart) for chart in CHARTS}
            title = page.title()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "report-offline.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requested == [report.as_uri()]  # the file itself, and nothing else
    assert drawn == dict.fromkeys(CHARTS, True)
    assert all(count > 100 for count in painted.values()), painted
    assert title.startswith(f"Run #{run.pk}: report offline (failed)")


def _only_the_file(route: Any, requested: list[str]) -> None:
    requested.append(route.request.url)
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        route.abort()
