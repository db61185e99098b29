"""A real browser on the run page as engineers find it: the summary fills in while
the run goes, legends list only what is drawn, a p99 from too few requests is a marked rolling
window, the distribution reads 1-2-5 and the charts leave no empty slots at 1400 and 1920 px."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval, RunStatus
from stats.histogram import histogram_of
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium

PASSWORD = "pw-browser-789"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def make_run(definition: LoadTestDefinition, status: str, counts: list[int]) -> LoadTestRun:
    """A run of `counts` requests per second, each second with one 900 ms request."""
    started = timezone.now() - timedelta(seconds=len(counts) + 1)
    finished = status != RunStatus.RUNNING
    values = [v for c in counts for v in [5_000 + 100 * i for i in range(c - 1)] + [900_000]]
    merged = histogram_of(values).encode()
    run = LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={
            "load_model": "closed",
            "steps": [{"name": "z-login", "path": "/"}, {"name": "a-report", "path": "/r"}],
        },
        status=status,
        started_at=started,
        finished_at=timezone.now() if finished else None,
        planned_duration_s=600,
        requests=sum(counts),
        duration_s=len(counts) if finished else None,
        latency_p99_ms=900.0 if finished else None,
        latency_histogram=merged if finished else "",
        service_histogram=merged if finished else "",
        steps_summary={"a-report": {"requests": 10}, "z-login": {"requests": 30}}
        if finished
        else {},
        health={"valid": True, "cpu_pct_max": 12.5, "target_rate": None, "invalid_reason": ""}
        if finished
        else {},
        passed=True if finished else None,
        valid=True if finished else None,
    )
    for index, count in enumerate(counts):
        second = histogram_of([5_000 + 100 * i for i in range(count - 1)] + [900_000])
        RunInterval.objects.create(
            run=run,
            index=index,
            started_at=started + timedelta(seconds=index),
            requests=count,
            errors=1,
            active_users=1,
            target=1,
            latency_p50_ms=5.0,
            latency_p95_ms=900.0,
            latency_p99_ms=900.0,
            service_p99_ms=900.0,
            latency_histogram=second.encode(),
            service_histogram=second.encode(),
            errors_by_class={"timeout": 1},
        )
    return run


LEGEND = """(id) => Chart.getChart(id).legend.legendItems.map((item) => item.text)"""
ROLLING_POINTS = """() => {
    const ds = Chart.getChart('chart-latency').data.datasets.find((d) => d.label === 'p99');
    return ds.data.map((p, i) => ({y: p.y, rolling: ds.rolling[i]}));
}"""
# Right edges of the chart cards, by their top: each row must reach the grid's right edge.
ROWS = """() => {
    const grid = document.querySelector('.run-charts').getBoundingClientRect();
    const rows = {};
    document.querySelectorAll('.run-charts > .card').forEach((card) => {
        const box = card.getBoundingClientRect();
        const top = Math.round(box.top);
        rows[top] = Math.max(rows[top] || 0, box.right);
    });
    return Object.values(rows).map((right) => Math.round(grid.right - right));
}"""


def test_the_run_page_shows_live_figures_honest_percentiles_and_a_full_layout(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    definition = LoadTestDefinition.objects.create(
        name="layout", target_base_url="http://127.0.0.1:9", users=1, duration_s=600
    )
    # 10 requests a second: p99 needs 10 seconds merged, p95 two, p50 each second alone.
    finished = make_run(definition, RunStatus.PASSED, [10] * 30)
    running = make_run(definition, RunStatus.RUNNING, [10] * 12)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    viewport = {"width": 1400, "height": 1000}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (
        page,
        _errors,
    ):
        page.goto(f"{base}/runs/{running.pk}/")
        page.wait_for_function("() => document.getElementById('run-page').dataset.liveSummary")
        live_note = page.text_content("#live-summary-note")
        live_percentiles = page.text_content("#percentiles")
        live_errors = page.text_content("#errors")
        page.screenshot(path=str(SCREENSHOTS / "run-live-summary.png"), full_page=True)

        page.goto(f"{base}/runs/{finished.pk}/")
        legend = page.evaluate(LEGEND, "chart-latency")
        page.check("#toggle-service")
        service_legend = page.evaluate(LEGEND, "chart-latency")
        page.uncheck("#toggle-service")
        p99 = page.evaluate(ROLLING_POINTS)
        labels = page.evaluate("() => Chart.getChart('chart-distribution').data.labels")
        distribution_legend = page.evaluate(LEGEND, "chart-distribution")
        gaps_1400 = page.evaluate(ROWS)
        health = page.text_content("#health")
        steps = page.text_content("#steps")
        page.screenshot(path=str(SCREENSHOTS / "run-layout-1400.png"), full_page=True)
        page.set_viewport_size({"width": 1920, "height": 1000})
        page.wait_for_timeout(300)
        gaps_1920 = page.evaluate(ROWS)
        page.screenshot(path=str(SCREENSHOTS / "run-layout-1920.png"), full_page=True)

    # Live: percentiles and errors of the 120 requests so far, before the run ends.
    assert "so far" in live_note
    assert re.search(r"\d+\.\d\d", live_percentiles)
    assert "timeout" in live_errors
    # Legends: what is drawn, and the rolling-window key because p99 points use one.
    assert legend[:3] == ["p50", "p95", "p99"]
    assert not any(text.startswith("service") for text in legend)
    assert "△ rolling window (too few requests in the second)" in legend
    assert not any(text in {"p50", "p95", "p99"} for text in service_legend)
    # No p99 from fewer than 100 requests: the first nine seconds (10..90) are not drawn,
    # every later one is a rolling window.
    assert all(point["y"] is None for point in p99[:9])
    assert all(point["rolling"] and point["y"] is not None for point in p99[9:])
    assert distribution_legend == ["latency"]  # service time is hidden, so not listed
    assert labels and all(re.fullmatch(r"(1|2|5)(0*|\.?0*)|0\.0*[125]", x) for x in labels)
    assert max(gaps_1400) < 30 and max(gaps_1920) < 30
    for text in ("Generator CPU, max", "12.5 %"):
        assert text in health
    assert "cpu_pct_max" not in health and "target_rate" not in health
    assert steps.index("z-login") < steps.index("a-report") and "Share" in steps
