"""A real browser (Debian's headless Chromium driven by Playwright) on a CPU capture's page:
the flame graph is drawn on its canvas, hovering names a frame, clicking one zooms into it and
clicking the root resets. The memory and trace pages draw their charts without a script error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium
from tests.profiling.pages.conftest import cpu_capture, memory_capture, trace_capture

PASSWORD = "pw-browser-789"
ROW = 18  # px, flamegraph.js' row height
ROOT_PATH = "all"
HOT_PATH = "all;MainThread;main (app.py:1);handle (app.py:10);work_hot (app.py:20)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

# Pixels of the canvas that something was painted on.
PAINTED = """() => {
    const canvas = document.getElementById("flamegraph");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    return painted;
}"""


def test_an_engineer_zooms_into_a_flame_graph_in_a_real_browser(
    live_server: Any, django_user_model: Any, settings: Any, tmp_path: Path
) -> None:
    settings.PROFILING_ARTEFACT_DIR = tmp_path / "profiles"
    django_user_model.objects.create_superuser("engineer", "e@example.com", PASSWORD)
    capture = cpu_capture()  # 10 samples: work_hot (60%) and parse (30%) under handle
    memory, trace = memory_capture(), trace_capture()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    viewport = {"width": 1200, "height": 900}
    with logged_in_page(base, "engineer", PASSWORD, viewport=viewport) as (
        page,
        errors,
    ):
        page.goto(f"{base}/profiles/{capture.pk}/")
        page.wait_for_selector("#flamegraph[data-focus]")
        drawn_before = int(page.get_attribute("#flamegraph", "data-drawn"))
        focus_before = page.get_attribute("#flamegraph", "data-focus")
        painted = page.evaluate(PAINTED)
        box = page.locator("#flamegraph").bounding_box()

        # work_hot: depth 4 (all, thread, main, handle, it), the left 60% of the width.
        hot = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] - 4.5 * ROW)
        page.mouse.move(*hot)
        page.wait_for_selector("#flame-tip:not([hidden])")
        tip = page.text_content("#flame-tip")
        page.mouse.click(*hot)
        page.wait_for_function(
            "(path) => document.getElementById('flamegraph').dataset.focus === path",
            arg=HOT_PATH,
        )
        drawn_zoomed = int(page.get_attribute("#flamegraph", "data-drawn"))
        page.screenshot(path=str(SCREENSHOTS / "profile-flamegraph-zoomed.png"), full_page=True)

        page.mouse.click(box["x"] + 10, box["y"] + box["height"] - ROW / 2)  # the root
        page.wait_for_function(
            "(path) => document.getElementById('flamegraph').dataset.focus === path",
            arg=ROOT_PATH,
        )
        drawn_reset = int(page.get_attribute("#flamegraph", "data-drawn"))
        page.screenshot(path=str(SCREENSHOTS / "profile-flamegraph.png"), full_page=True)

        page.goto(f"{base}/profiles/{memory.pk}/")
        memory_lines = page.evaluate(
            "() => Chart.getChart('chart-memory').data.datasets.map((d) => d.data.length)"
        )
        page.screenshot(path=str(SCREENSHOTS / "profile-memory.png"), full_page=True)
        page.goto(f"{base}/profiles/{trace.pk}/")
        trace_bars = int(page.get_attribute("#trace-timeline", "data-drawn"))
        page.screenshot(path=str(SCREENSHOTS / "profile-trace.png"), full_page=True)

    # all, thread, main, handle, work_hot, parse: every frame of the pruned tree.
    assert (focus_before, drawn_before) == (ROOT_PATH, 6)
    assert painted > 1000
    assert "work_hot (app.py:20)" in tip and "6 samples" in tip and "60.00% of all" in tip
    # Zoomed: its four ancestors and itself; parse, beside it, is gone.
    assert drawn_zoomed == 5
    assert drawn_reset == drawn_before
    assert memory_lines == [60, 60, 2]  # RSS, USS, the trend line's two ends
    assert trace_bars == 12  # 2 threads x 3 windows x (outer, inner)
    assert errors == []
