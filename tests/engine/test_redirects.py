from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from loadtests.engine import run
from loadtests.engine.http import InvalidRequestTarget, Target, build_request
from tests.engine.helpers import closed, step
from tests.targets import target_server

# Each answers a redirect whose Location may not go into a request line as it is.
BAD_LOCATIONS = {
    "space": "/a b HTTP/1.1X",
    "tab": "/a\tb",
    "control": "/a\x01b",
    "delete": "/a\x7fb",
    "non-ascii": "/café",
}


@pytest.fixture
def own_target() -> Iterator[str]:
    """A target of this test's own, so that what it calls malformed is this test's doing."""
    with target_server() as base_url:
        yield base_url


def malformed_requests(base_url: str) -> list[str]:
    with urllib.request.urlopen(f"{base_url}/malformed", timeout=5) as answer:
        return json.loads(answer.read())


def redirect_to(location: str, **fields: object) -> object:
    return step(f"/redirect-to?location={quote(location, safe='')}", name="redirect", **fields)


@pytest.mark.parametrize("location", BAD_LOCATIONS.values(), ids=BAD_LOCATIONS.keys())
def test_it_counts_a_redirect_to_an_unsendable_location_as_a_protocol_error(
    own_target: str, location: str
) -> None:
    config = closed(
        own_target,
        redirect_to(location),
        duration_s=0.5,
        follow_redirects=True,
        abort_error_rate_pct=None,
    )
    result = run(config)
    assert result.requests > 0
    assert result.errors_by_class["protocol"]["count"] == result.errors == result.requests
    assert malformed_requests(own_target) == []


def test_it_follows_a_percent_encoded_location(own_target: str) -> None:
    config = closed(
        own_target,
        redirect_to("/ok?q=a%20b%09c", check_contains="ok"),
        duration_s=0.5,
        follow_redirects=True,
    )
    result = run(config)
    assert result.requests > 0 and result.errors == 0
    assert malformed_requests(own_target) == []


def test_it_checks_an_absolute_location_on_the_same_origin(own_target: str) -> None:
    config = closed(
        own_target,
        redirect_to(f"{own_target}/a b"),
        duration_s=0.5,
        follow_redirects=True,
        abort_error_rate_pct=None,
    )
    result = run(config)
    assert result.errors_by_class["protocol"]["count"] == result.requests > 0
    assert malformed_requests(own_target) == []


@pytest.mark.parametrize("path", ["/a b", "/a\tb", "/a\x00b", "/a\x7f", "/café", "relative"])
def test_it_never_builds_a_request_line_from_an_unsendable_path(path: str) -> None:
    with pytest.raises(InvalidRequestTarget):
        build_request(Target("http://127.0.0.1:8000"), "GET", path, {}, None)
