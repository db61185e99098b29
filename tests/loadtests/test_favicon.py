"""Every page has an icon: the link in the page head and the /favicon.ico browsers ask for."""

from __future__ import annotations

from typing import Any

import pytest


def test_favicon_ico_leads_to_an_icon_without_logging_in(client: Any) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 302, response.status_code
    assert response["Location"] == "/static/offgridperf/favicon.ico"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    body = b"".join(icon.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert icon["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")


@pytest.mark.parametrize("path", ["/", "/accounts/login/"])
def test_pages_link_an_icon_that_is_served(admin_client: Any, client: Any, path: str) -> None:
    page = (admin_client if path == "/" else client).get(path).content.decode()
    assert '<link rel="icon" href="/static/offgridperf/favicon.svg"' in page
    icon = client.get("/static/offgridperf/favicon.svg")
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content)
