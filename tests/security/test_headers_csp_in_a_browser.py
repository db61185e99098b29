"""A real browser finds nothing on our pages that the Content-Security-Policy blocks: the
charts (Chart.js) draw, and the console reports no violation."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.models import LoadTestDefinition
from tests.browser.session import logged_in_page, needs_chromium
from tests.browser.test_overview_definition_and_compare import run_of

PASSWORD = "pw-csp-browser-1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def test_pages_with_charts_and_the_admin_break_no_rule_of_the_policy(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_superuser("csp", "csp@example.com", PASSWORD)
    definition = LoadTestDefinition.objects.create(
        name="csp", target_base_url="http://127.0.0.1:1", threshold_p95_ms=50
    )
    run = run_of(definition, 30)
    run_of(definition, 20)
    base = live_server.url
    pages = [
        "/",
        f"/definitions/{definition.pk}/",
        f"/runs/{run.pk}/",
        "/queries/",
        "/profiles/",
        "/cache/",
        "/admin/",
        f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/",
    ]
    violations: list[str] = []
    drawn: dict[str, int] = {}

    def listen(page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )

    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    with logged_in_page(base, "csp", PASSWORD, before_login=listen) as (page, _errors):
        for path in pages:
            page.goto(f"{base}{path}")
            page.wait_for_load_state("networkidle")
            drawn[path] = page.evaluate(
                "() => typeof Chart === 'undefined' ? 0 :"
                " [...document.querySelectorAll('canvas')]"
                ".filter((canvas) => Chart.getChart(canvas)).length"
            )
    assert violations == []
    assert drawn["/"] > 0 and drawn[f"/definitions/{definition.pk}/"] > 0, drawn
