"""A real browser finds nothing on our pages that the Content-Security-Policy blocks: the
charts (Chart.js) draw, and the console reports no violation."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from loadtests.models import LoadTestDefinition
from tests.browser.test_live_run import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_pages_polish import run_of

PASSWORD = "pw-csp-browser-1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


def test_pages_with_charts_and_the_admin_break_no_rule_of_the_policy(
    live_server: Any, django_user_model: Any
) -> None:
    from playwright.sync_api import sync_playwright

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
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.on(
                "console",
                lambda message: (
                    violations.append(f"{page.url}: {message.text}")
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            page.goto(f"{base}/accounts/login/")
            page.fill("input[name=username]", "csp")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            for path in pages:
                page.goto(f"{base}{path}")
                page.wait_for_load_state("networkidle")
                drawn[path] = page.evaluate(
                    "() => typeof Chart === 'undefined' ? 0 :"
                    " [...document.querySelectorAll('canvas')]"
                    ".filter((canvas) => Chart.getChart(canvas)).length"
                )
        finally:
            browser.close()
    assert violations == []
    assert drawn["/"] > 0 and drawn[f"/definitions/{definition.pk}/"] > 0, drawn
