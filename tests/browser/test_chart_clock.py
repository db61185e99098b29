"""A browser set to an English (US) locale still reads chart times on the 24-hour clock."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.session import logged_in_page, needs_chromium
from tests.browser.test_query_pages import PASSWORD, seed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

TICKS = "() => Chart.getChart('chart-query-stats').scales.x.ticks.map((tick) => tick.label)"
TOOLTIP_TITLE = """() => {
    const chart = Chart.getChart('chart-query-stats');
    const point = chart.data.datasets[0].data[0];
    return chart.options.plugins.tooltip.callbacks.title([{ parsed: point }]);
}"""


def test_a_time_axis_uses_the_24_hour_clock_in_an_en_us_browser(
    live_server: Any, django_user_model: Any
) -> None:
    shape_id = seed(django_user_model)
    base = live_server.url
    with logged_in_page(
        base, "engineer", PASSWORD, locale="en-US", timezone_id="America/New_York"
    ) as (page, _errors):
        page.goto(f"{base}/queries/{shape_id}/")
        page.wait_for_function("() => Chart.getChart('chart-query-stats')")
        ticks = page.evaluate(TICKS)
        assert ticks and all(re.fullmatch(r"\d\d:\d\d", tick) for tick in ticks), ticks
        title = page.evaluate(TOOLTIP_TITLE)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", title), title
