"""Every page sends a strict Content-Security-Policy: scripts, styles and everything else from
our own origin only, nothing inline runs, and no page may be framed. Our templates keep to it:
no inline scripts, event-handler attributes or <style> elements."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

TEMPLATES = Path(ROOT) / "templates"


def directives(response: Any) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_strict(response: Any) -> None:
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src-elem"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    # Nothing anywhere may run inline script or eval.
    everything = " ".join(" ".join(sources) for sources in policy.values())
    assert "unsafe-eval" not in everything
    assert all("'unsafe-inline'" not in policy[name] for name in policy if "script" in name)


def test_the_login_page_sends_a_strict_policy(client: Any) -> None:
    assert_strict(client.get("/accounts/login/"))


def test_dashboard_pages_and_the_admin_send_a_strict_policy(admin_client: Any) -> None:
    for path in ("/", "/queries/", "/profiles/", "/cache/", "/admin/"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)


def test_the_json_endpoints_and_health_send_it_too(admin_client: Any) -> None:
    assert_strict(admin_client.get("/healthz"))


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)
JAVASCRIPT_URL = re.compile(r"javascript:", re.I)


# Documents made to be opened on their own, offline (a run's HTML report, `loadtest --report`):
# their scripts and styles must be inside them. The app hands them out only as attachments,
# and tests/loadtests/test_run_reports.py proves that nothing a run carries becomes a script.
STANDALONE = {"loadtests/report.html"}
PAGE_TEMPLATES = [
    path
    for path in sorted(TEMPLATES.rglob("*.html"))
    if str(path.relative_to(TEMPLATES)) not in STANDALONE
]


@pytest.mark.parametrize(
    "template", PAGE_TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES))
)
def test_no_template_has_inline_script_or_style_elements(template: Path) -> None:
    text = template.read_text()
    assert not INLINE_SCRIPT.search(text), "an inline <script> (json_script data is fine)"
    assert not EVENT_HANDLER.search(text), "an on...= event-handler attribute"
    assert not STYLE_ELEMENT.search(text), "a <style> element: use static/ CSS"
    assert not JAVASCRIPT_URL.search(text), "a javascript: URL"
