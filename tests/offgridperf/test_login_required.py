from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# The only pages a stranger may see.
# favicon.ico: a redirect to the static icon, which browsers ask for before any login.
# /metrics has no login (Prometheus has none): its own guard answers METRICS_ALLOWED_IPS or the
# METRICS_TOKEN only (tests/offgridperf/test_metrics.py).
PUBLIC = {"healthz", "metrics", "accounts/login/", "admin/login/", "favicon.ico"}
SAMPLE_ARGS = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "path": "x",
}


def walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            if route.startswith("^"):  # regex routes (admin internals): give a plain sample
                route = route.strip("^$").replace("\\Z", "")
                if "(?P<" in route or "[" in route or "(" in route:
                    continue
            for converter, sample in SAMPLE_ARGS.items():
                while f"<{converter}:" in route:
                    start = route.index(f"<{converter}:")
                    route = route[:start] + sample + route[route.index(">", start) + 1 :]
            yield prefix + route


def test_it_requires_login_on_every_page(client: Any) -> None:
    urls = sorted(set(walk(get_resolver().url_patterns)))
    assert len(urls) > 10
    checked = 0
    for url in urls:
        if url in PUBLIC or url.startswith("static/"):
            continue
        response = client.get("/" + url)
        if url.startswith("api/v1/"):
            # The HTTP API asks for a token rather than redirecting to a login form.
            if response.status_code == 405:  # a POST-only endpoint
                response = client.post("/" + url)
            assert response.status_code == 401, f"/{url} answered {response.status_code}"
            assert response["WWW-Authenticate"].startswith("Bearer")
            checked += 1
            continue
        assert response.status_code in (301, 302), f"/{url} answered {response.status_code}"
        location = response["Location"]
        assert "login" in location, f"/{url} redirected to {location}"
        checked += 1
    assert checked > 10


def test_it_serves_the_login_page(client: Any) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_it_shows_navigation_after_login(admin_client: Any) -> None:
    response = admin_client.get("/")
    assert response.status_code == 200
    for label in (b"Load tests", b"Profiles", b"Queries", b"Admin"):
        assert label in response.content


def test_it_serves_vendored_chartjs_and_the_stylesheet(client: Any) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/chartjs/chart.umd.min.js")
    assert finders.find("vendor/chartjs/LICENSE.md")
    assert finders.find("css/offgridperf.css")


def test_static_files_collect_for_a_debug_off_deployment(tmp_path: Any, settings: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, stdout=StringIO())
    assert (tmp_path / "staticfiles.json").exists()
