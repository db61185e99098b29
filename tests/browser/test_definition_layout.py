"""A real browser on the reference flow's definition page: its steps table fits its card (no
column hidden under the next card), and each history legend shows its line's own colour."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from loadtests.models import LoadTestDefinition, RunStatus
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium
from tests.browser.test_overview_definition_and_compare import run_of

PASSWORD = "pw-browser-789"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

# How far each steps-table cell reaches past its card's right edge, in px (0: it fits).
OVERFLOW = """() => {
    const card = document.getElementById("steps-table").closest(".card").getBoundingClientRect();
    return [...document.querySelectorAll("#steps-table th, #steps-table td")].map(
        (cell) => Math.max(0, Math.round(cell.getBoundingClientRect().right - card.right)));
}"""
# Each legend item of a chart beside the colour of the line (or bars) it stands for.
LEGEND_COLOURS = """(id) => {
    const chart = Chart.getChart(document.getElementById(id));
    return chart.legend.legendItems.map((item) => {
        const dataset = chart.data.datasets[item.datasetIndex];
        return [item.text, item.fillStyle, item.strokeStyle, dataset.borderColor];
    });
}"""


def test_the_definition_page_fits_its_steps_and_colours_its_legends_in_a_real_browser(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    flow = Path(settings.BASE_DIR) / "emissions" / "loadtests" / "emissions-upload-flow.json"
    call_command("loadtest", "import", str(flow), stdout=StringIO())
    definition = LoadTestDefinition.objects.get(name="emissions-upload-flow")
    definition.threshold_p95_ms, definition.threshold_min_throughput_rps = 50, 80
    definition.save()
    # The oldest run failed: its red marker must not colour the legend.
    run_of(definition, 40, p95=70.0, status=RunStatus.FAILED, error_rate_pct=2.0)
    run_of(definition, 30, p95=20.0)
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = {"width": 1400, "height": 900}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (page, errors):
        page.goto(f"{base}/definitions/{definition.pk}/")
        page.screenshot(path=str(SCREENSHOTS / "definition-layout.png"), full_page=True)
        assert max(page.evaluate(OVERFLOW)) == 0
        for chart in ("history-latency", "history-throughput", "history-errors"):
            for text, fill, stroke, line in page.evaluate(LEGEND_COLOURS, chart):
                assert (fill, stroke) == (line, line), (chart, text)
        assert errors == []
