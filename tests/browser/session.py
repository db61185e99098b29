"""A logged-in Chromium page for the browser tests: launch, log in through the login form,
collect page errors, and close the browser however the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.browser.test_live_run import CHROMIUM, CHROMIUM_ARGS


@contextmanager
def logged_in_page(
    base_url: str, username: str, password: str, **page_options: Any
) -> Iterator[tuple[Any, list[str]]]:
    """The page, logged in as `username`, and the list its uncaught page errors go to. No ORM
    inside: Playwright's sync API runs an event loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(**page_options)
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base_url}/accounts/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/")
            yield page, errors
        finally:
            browser.close()
