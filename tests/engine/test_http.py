from __future__ import annotations

import json

from loadtests.engine import run
from loadtests.engine.http import Target, build_request, check_json
from tests.engine.helpers import closed, step


def test_requests_are_serialised_once_with_host_and_length() -> None:
    target = Target("http://127.0.0.1:8080/api")
    request = build_request(target, "POST", "/items?x=1", {"X-Key": "k"}, '{"a": 1}')
    assert request.startswith(b"POST /api/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"X-Key: k\r\n" in request and b'Content-Length: 8\r\n\r\n{"a": 1}' in request
    assert b"Host: example.test\r\n" in build_request(
        Target("https://example.test"), "GET", "/", {}, None
    )


def test_json_checks_follow_dotted_paths_into_lists() -> None:
    body = json.dumps({"data": {"items": [{"id": 7}], "ok": True}}).encode()
    assert check_json(body, ["data", "items", "0", "id"], 7) is None
    assert check_json(body, ["data", "ok"], 1) is not None  # true is not 1
    assert "missing" in check_json(body, ["data", "nope"], 1)
    assert "not JSON" in check_json(b"<html>", ["a"], 1)


def test_chunked_bodies_are_parsed_and_checked(target: str) -> None:
    result = run(closed(target, step("/chunked", check_contains="chunked world"), duration_s=0.5))
    assert result.requests > 10 and result.errors == 0
    assert result.connections_opened == 1  # keep-alive across chunked responses


def test_large_content_length_bodies_are_read_whole(target: str) -> None:
    big = step("/bytes?n=200000", check_contains="x" * 100)
    result = run(closed(target, big, step("/ok"), users=2, duration_s=0.5))
    assert result.requests > 10 and result.errors == 0


def test_bodies_that_end_at_close_and_connection_close_reconnect(target: str) -> None:
    config = closed(
        target, step("/eof", check_contains="until close"), step("/close"), duration_s=0.5
    )
    result = run(config)
    assert result.errors == 0 and result.requests > 10
    assert result.connections_opened >= result.requests - 1


def test_redirects_are_not_followed_unless_asked(target: str) -> None:
    config = closed(target, step("/redirect"), duration_s=0.5, abort_error_rate_pct=None)
    result = run(config)
    assert result.errors_by_class["status_302"]["count"] == result.requests > 0
    followed = run(
        closed(
            target, step("/redirect", check_contains="ok"), duration_s=0.5, follow_redirects=True
        )
    )
    assert followed.errors == 0 and followed.requests > 10
    expected = run(closed(target, step("/redirect", expected_statuses=(302,)), duration_s=0.5))
    assert expected.errors == 0


def test_head_responses_have_no_body(target: str) -> None:
    result = run(
        closed(target, step("/ok", name="head", method="HEAD"), step("/ok"), duration_s=0.5)
    )
    assert result.errors == 0 and result.requests > 10
    assert result.connections_opened == 1


def test_methods_headers_and_bodies_reach_the_target(target: str) -> None:
    echo = step(
        "/echo?q=1", method="POST", body='{"n": 1}', headers={"X-Run": "abc"},
        check_json_field="headers.x-run", check_json_value="abc",
    )  # fmt: skip
    body = step(
        "/echo",
        name="body",
        method="PUT",
        body="payload",
        check_json_field="body",
        check_json_value="payload",
    )
    result = run(closed(target, echo, body, duration_s=0.5))
    assert result.errors == 0 and result.requests > 10
