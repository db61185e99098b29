"""Take the README's screenshot of a run page from a running `make run`:

    .venv/bin/python -m docs.screenshot http://127.0.0.1:8000 admin PASSWORD 1 docs/img/run-page.png

Uses the Debian chromium package through playwright (no browser download), as tests/browser do.
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 900}


def main(argv: list[str]) -> int:
    base_url, username, password, run_id, output = argv
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{base_url}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{base_url}/runs/{run_id}/")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # the charts animate in
        page.screenshot(path=output, full_page=False)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
