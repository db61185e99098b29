"""A journey recorded in a real browser (Playwright's record_har) replays: a Django login
through its CSRF form, then a page behind the login, imported with `loadtest import-har` and
replayed by `loadtest run --local` and by *Try once*, with the login working."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtests import flowcheck
from loadtests.models import LoadTestDefinition
from tests.browser.session import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.loadtests.test_runs import run_cli

PASSWORD = "pw-recorded-314"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), needs_chromium]


def record_login(base_url: str, har_path: Path) -> str:
    """Log in through the login form and open the dashboard, recording every exchange; the
    dashboard's title as the browser saw it. No ORM inside: Playwright runs an event loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(record_har_path=str(har_path))
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{base_url}/accounts/login/")
            page.fill("input[name=username]", "recorder")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/")
            title = page.title()
            context.close()  # writes the HAR
        finally:
            browser.close()
    return title


def test_it_replays_a_recorded_django_login_with_the_login_working(
    live_server: Any, django_user_model: Any, tmp_path: Path, settings: Any
) -> None:
    # The live server runs in this process: a cheap hasher makes each replayed login take
    # milliseconds, not the second a production hash takes on a loaded machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_user("recorder", "r@example.com", PASSWORD)
    har_path = tmp_path / "login.har"
    title = record_login(live_server.url, har_path)

    # A browser on a loaded machine pauses long between requests: the replay need not.
    code, out, err = run_cli(
        "import-har", str(har_path), "--name", "recorded login", "--max-think", "0.1"
    )
    assert code == 0, err
    assert "created" in out
    definition = LoadTestDefinition.objects.get(name="recorded login")
    steps = list(definition.steps.order_by("order"))
    by_name = {step.name: step for step in steps}
    login, landing = by_name["POST /accounts/login/"], by_name["GET /"]
    # The CSRF token the form gave is taken from the page and sent back as a variable.
    form = by_name["GET /accounts/login/"]
    assert [e["variable"] for e in form.extract] == ["csrfmiddlewaretoken"]
    assert "csrfmiddlewaretoken={{ csrfmiddlewaretoken }}" in login.body
    assert login.expected_statuses == "302" and landing.expected_statuses == "200"
    # The page the login redirected to is where the replay's redirect points.
    assert landing.path == "/{{ location }}"
    assert not any(name.lower() == "cookie" for step in steps for name in step.headers)
    assert "skipped" in out and "static asset" in out

    # Replayed by the engine: the login redirects and the page behind it answers 200.
    code, out, err = run_cli("run", "recorded login", "--local", "--duration", "4", "--json")
    summary = json.loads(out)
    assert code == 0, (summary["status_reason"], err)
    figures = summary["steps"]
    assert figures["GET /"]["requests"] >= 1
    assert all(step["errors"] == 0 for step in figures.values()), figures

    # And by Try once: each exchange as the admin shows it.
    exchanges = flowcheck.try_once(definition)
    shown = {exchange["step"]: exchange for exchange in exchanges}
    assert shown["POST /accounts/login/"]["status"] == 302
    assert shown["GET /"]["status"] == 200
    assert title and title in shown["GET /"]["body"]
