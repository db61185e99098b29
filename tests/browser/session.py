"""The one way the browser tests drive Chromium: launch Debian's headless Chromium, log in
through a login form, collect page errors, and close the browser however the test ends.

Per test rather than per session: Playwright's sync API runs an event loop in the test's
thread while the browser is open, and Django refuses the ORM inside one, so each test seeds
its data first, then opens the browser."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"

needs_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="needs Debian's chromium package"
)


@contextmanager
def logged_in_page(
    base_url: str,
    username: str,
    password: str,
    *,
    login_path: str = "/accounts/login/",
    landing_path: str = "/",
    submit: str = "button[type=submit]",
    before_login: Callable[[Any], None] | None = None,
    **page_options: Any,
) -> Iterator[tuple[Any, list[str]]]:
    """The page, logged in as `username` through the form at `login_path`, and the list its
    uncaught page errors go to. `before_login` sees the page before its first request (to
    listen from the very first page). No ORM inside: Playwright's sync API runs an event
    loop. Another page of the same session: `page.context.new_page()`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # A context of its own, so that the test may open more pages in the same session.
            page = browser.new_context(**page_options).new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            if before_login is not None:
                before_login(page)
            page.goto(f"{base_url}{login_path}")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click(submit)
            page.wait_for_url(f"{base_url}{landing_path}")
            yield page, errors
        finally:
            browser.close()
