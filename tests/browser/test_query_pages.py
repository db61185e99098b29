"""A real browser (Debian's headless Chromium driven by Playwright) on the query optimizer's
pages: log in, open the queries list, follow a query to its page, see its chart drawn."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from queryopt.models import PlanSource, QueryPlan, SnapshotReason
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium
from tests.queryopt.pages.conftest import delta, make_target, shape, snapshot, window

PASSWORD = "pw-browser-456"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def seed(django_user_model: Any) -> int:
    """A superuser and one query seen by the app over three minutes and by its target in two
    snapshots, with a plan; its shape's id."""
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    target = make_target()
    fp = shape(target, "f-by-site", "SELECT * FROM rows WHERE site_id = $1")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for minute in range(3):
        window(fp, start + timedelta(minutes=minute), [1_000 * (minute + 1)] * 20)
    for minutes in (0, 5):
        taken = start + timedelta(minutes=minutes)
        delta(snapshot(target, taken, SnapshotReason.SCHEDULED), fp, calls=30, total_ms=90.0)
    QueryPlan.objects.create(
        shape=fp,
        captured_at=timezone.now(),
        plan_hash="0123456789abcdef",
        plan={"Plan": {"Node Type": "Seq Scan", "Relation Name": "rows", "Total Cost": 4000.0}},
        source=PlanSource.SLOW,
    )
    return fp.pk


def test_an_engineer_follows_a_query_to_its_chart_in_a_real_browser(
    live_server: Any, django_user_model: Any
) -> None:
    shape_id = seed(django_user_model)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    viewport = {"width": 1400, "height": 1000}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (
        page,
        errors,
    ):
        page.click("nav.mainnav >> text=Queries")
        page.wait_for_url(f"{base}/queries/")
        page.click(f"#query-rows tr[data-shape-id='{shape_id}'] a")
        page.wait_for_url(f"{base}/queries/{shape_id}/")
        page.wait_for_function(
            """() => {
                const chart = Chart.getChart('chart-query-stats');
                return chart && chart.data.datasets[0].data.length === 3
                    && chart.data.datasets[3].data.length === 2;
            }"""
        )
        box = page.locator("#chart-query-stats").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert page.locator("#plan table.plan-tree").is_visible()
        page.screenshot(path=str(SCREENSHOTS / "query-detail.png"), full_page=True)
        assert errors == []
