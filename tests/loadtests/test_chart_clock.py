"""Every chart labels times on the 24-hour clock, as every page of the product prints them.

The browser's own locale decides what `toLocaleTimeString()` and `toLocaleString()` print
(en-US: "02:15 PM"), so the pages' scripts either format times themselves or pin the
23-hour cycle (`hourCycle: "h23"`; `hour12: false` turns midnight into "24:00" in some
browsers)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

STATIC = Path(settings.BASE_DIR) / "static"
LOCALE_CLOCK = re.compile(r"\.toLocale(?:Time)?String\(([^)]*)\)")


def page_scripts() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*.js") if "vendor" not in p.relative_to(STATIC).parts)


def test_no_chart_script_leaves_the_clock_to_the_browser_locale() -> None:
    found = [
        f"{script.relative_to(STATIC)}: {call.group(0)}"
        for script in page_scripts()
        for call in LOCALE_CLOCK.finditer(script.read_text())
        if 'hourCycle: "h23"' not in call.group(1)
    ]
    assert found == []


def test_the_scan_sees_the_page_scripts() -> None:
    names = {script.name for script in page_scripts()}
    assert {"run.js", "cache.js", "detail.js"} <= names
