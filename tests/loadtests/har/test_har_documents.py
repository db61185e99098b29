"""A HAR recording becomes a flow document (loadtests.har, pure): what is kept, what is
skipped and why, headers cleaned, think times from the gaps, and values a response gave
correlated into extractions and templates. Bad files are refused naming the entry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadtests import har
from loadtests.engine import EngineConfig
from loadtests.engine.config import MAX_STEPS
from tests.loadtests.har.recordings import BASE, entry, har_bytes


def allowed(url: str) -> bool:
    return "127.0.0.1" in url


def convert(*entries: dict[str, Any], **options: Any) -> har.Recording:
    parsed = har.parse_har(har_bytes(*entries))
    return har.flow_document(parsed, name="recorded", host_allowed=allowed, **options)


def steps_of(recording: har.Recording) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in recording.document["steps"]}


def engine_problems(recording: har.Recording) -> list[tuple[str, str]]:
    """What the engine says of the document (it compiles every template)."""
    document = json.loads(json.dumps(recording.document))
    for step in document["steps"]:
        for name, value in step["headers"].items():
            step["headers"][name] = value.replace(har.AUTHORIZATION_PLACEHOLDER, "Bearer x")
    return EngineConfig.from_dict(document).validate()


def test_it_skips_static_assets_and_foreign_hosts_and_says_why() -> None:
    recording = convert(
        entry("GET", "/"),
        entry("GET", "/static/app.css", mime="text/css", at_s=0.1),
        entry("GET", "/static/logo", mime="image/png", at_s=0.1),
        entry("GET", "/font.woff2", mime="application/octet-stream", at_s=0.1),
        entry("GET", "/collect", base="https://tracker.example", at_s=0.2),
        entry("GET", "/api/other", base="http://127.0.0.1:9999", at_s=0.3),
        entry("GET", "/reports/", at_s=1.0),
        entry("GET", "/menu/", at_s=1.1, _fromCache="memory"),
        entry("GET", "/aborted/", at_s=1.2, status=0),
    )
    assert [step["path"] for step in recording.document["steps"]] == ["/", "/reports/"]
    reasons = {skipped.entry: skipped.reason for skipped in recording.skipped}
    assert reasons[f"entries[1] (GET {BASE}/static/app.css)"].startswith("a static asset")
    assert reasons["entries[4] (GET https://tracker.example/collect)"] == (
        "host 'tracker.example' is not in LOADTEST_ALLOWED_HOSTS"
    )
    assert reasons["entries[5] (GET http://127.0.0.1:9999/api/other)"] == (
        f"another origin than the target {BASE}"
    )
    assert reasons[f"entries[7] (GET {BASE}/menu/)"] == (
        "the browser's cache answered it: it was never sent"
    )
    assert reasons[f"entries[8] (GET {BASE}/aborted/)"].startswith("no response was recorded")
    assert len(reasons) == 7
    assert recording.document["target_base_url"] == BASE
    assert recording.document["mode"] == "flow"

    kept = convert(
        entry("GET", "/"), entry("GET", "/static/app.css", mime="text/css"), include_static=True
    )
    assert len(kept.document["steps"]) == 2


def test_it_keeps_methods_paths_queries_and_bodies_and_cleans_the_headers() -> None:
    recording = convert(
        entry(
            "POST",
            "/api/search/?q=caf%C3%A9&page=2",
            status=201,
            body='{"site": "north"}',
            headers={
                "Content-Type": "application/json",
                "Accept-Language": "en",
                "Accept-Encoding": "gzip, br",
                "Connection": "keep-alive",
                "Cookie": "sessionid=recorded-session",
                "If-None-Match": '"abc"',
                "Sec-Fetch-Mode": "cors",
                ":authority": "127.0.0.1:8001",
                "User-Agent": "Chrome",
                "Authorization": "Bearer recorded-secret",
            },
        ),
        entry("GET", "/cached/", status=304, at_s=1),
    )
    search, cached = recording.document["steps"]
    assert search["method"] == "POST"
    assert search["path"] == "/api/search/?q=caf%C3%A9&page=2"
    assert search["body"] == '{"site": "north"}'
    assert search["headers"] == {
        "Content-Type": "application/json",
        "Accept-Language": "en",
        "Authorization": "${AUTHORIZATION}",
    }
    assert search["expected_statuses"] == [201]
    assert cached["expected_statuses"] == [200, 304]
    assert "recorded-secret" not in json.dumps(recording.document)
    assert "Authorization as ${AUTHORIZATION}" in recording.kept[0].notes
    assert engine_problems(recording) == []


def test_think_times_come_from_the_gaps_capped() -> None:
    recording = convert(
        entry("GET", "/a", at_s=0, time_ms=500),
        entry("GET", "/b", at_s=1.5, time_ms=100),  # 1 s after /a ended
        entry("GET", "/c", at_s=31.6),  # 30 s later: capped
        max_think_s=4,
    )
    assert recording.document["think_time_min_s"] == 1.0
    assert recording.document["think_time_max_s"] == 4.0
    assert recording.document["load_model"] == "closed"


def test_a_csrf_form_login_is_correlated_through_the_hidden_input_and_the_redirect() -> None:
    token = "Rk9yTWVkVG9rZW4xMjM0NTY3ODkw"
    form = (
        '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{token}"><input name="username"></form>'
    )
    recording = convert(
        entry(
            "GET",
            "/accounts/login/",
            text=form,
            response_headers=[("Set-Cookie", "csrftoken=cookie-token-value; Path=/")],
        ),
        entry(
            "POST",
            "/accounts/login/",
            at_s=2,
            status=302,
            body=f"csrfmiddlewaretoken={token}&username=ann&password=pw",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            response_headers=[("Location", "/runs/?page=1"), ("Set-Cookie", "sessionid=s3ss10n")],
        ),
        entry("GET", "/runs/?page=1", at_s=2.1),
    )
    steps = steps_of(recording)
    named, valued = r"""\bname=["']csrfmiddlewaretoken["']""", r"""\bvalue=["']([^"']*)["']"""
    assert steps["GET /accounts/login/"]["extract"] == [
        {"variable": "csrfmiddlewaretoken", "from": "regex",
         "expression": f"<input[^>]*{named}[^>]*{valued}"}
    ]  # fmt: skip
    login = steps["POST /accounts/login/"]
    assert login["body"] == "csrfmiddlewaretoken={{ csrfmiddlewaretoken }}&username=ann&password=pw"
    assert login["expected_statuses"] == [302]
    assert login["extract"] == [
        {"variable": "location", "from": "header", "expression": "Location ~ ^/(.*)"}
    ]
    assert steps["GET /runs/"]["path"] == "/{{ location }}"
    assert recording.document["follow_redirects"] is False
    assert engine_problems(recording) == []


def test_json_ids_and_cookies_sent_back_become_extractions() -> None:
    recording = convert(
        entry(
            "POST",
            "/api/batches/",
            status=201,
            body='{"name": "march-upload"}',
            headers={"Content-Type": "application/json"},
            mime="application/json",
            text=json.dumps({"data": {"batch_id": 4711, "name": "march-upload", "ok": True}}),
            response_headers=[("Set-Cookie", "csrftoken=AbCdEfGh12345678; Path=/")],
        ),
        entry(
            "POST",
            "/api/batches/4711/calculate?from=4711",
            at_s=1,
            headers={"X-CSRFToken": "AbCdEfGh12345678"},
            body='{"batch": 4711, "label": "march-upload"}',
        ),
        entry("GET", "/api/batches/47110/", at_s=2),  # a longer number: no token of it
    )
    create, calculate, other = recording.document["steps"]
    assert create["extract"] == [
        {"variable": "batch_id", "from": "json", "expression": "$.data.batch_id"},
        {"variable": "cookie_csrftoken", "from": "cookie", "expression": "csrftoken"},
    ]
    assert calculate["path"] == "/api/batches/{{ batch_id }}/calculate?from={{ batch_id }}"
    assert calculate["headers"] == {"X-CSRFToken": "{{ cookie_csrftoken }}"}
    # The name came from the client first: it is no server value to take from the response.
    assert calculate["body"] == '{"batch": {{ batch_id }}, "label": "march-upload"}'
    assert other["path"] == "/api/batches/47110/"
    assert "{{ batch_id }} from step 1" in recording.kept[1].notes
    assert engine_problems(recording) == []


def test_a_bearer_token_a_response_gave_is_taken_from_it_not_asked_for() -> None:
    recording = convert(
        entry(
            "POST",
            "/api/token/",
            mime="application/json",
            text=json.dumps({"token": "tok-9f8e7d6c5b4a"}),
        ),
        entry("GET", "/api/me/", at_s=1, headers={"Authorization": "Bearer tok-9f8e7d6c5b4a"}),
    )
    me = steps_of(recording)["GET /api/me/"]
    # An Authorization header is a placeholder still: the secret may be more than the token.
    assert me["headers"] == {"Authorization": "${AUTHORIZATION}"}
    assert "tok-9f8e7d6c5b4a" not in json.dumps(recording.document)


def test_step_names_stay_unique_and_short() -> None:
    long_path = "/" + "a" * 80
    recording = convert(entry("GET", long_path), entry("GET", long_path, at_s=1))
    names = [step["name"] for step in recording.document["steps"]]
    assert len(set(names)) == 2 and all(len(name) <= 60 for name in names)
    assert names[1].endswith(" #2")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html>not json</html>", "not JSON at line 1, column 1"),
        (har_bytes(entry("GET", "/"))[:-40], "the JSON ends early at line 1: a truncated file"),
        (b'{"log": {"pages": []}}', "not a HAR file: it has no log.entries list"),
        (b'{"log": {"entries": [{"response": {}}]}}', "entries[0]: the entry has no request"),
        (
            json.dumps(
                {
                    "log": {
                        "entries": [
                            {
                                **entry("GET", "/x"),
                                "response": {
                                    "status": 200,
                                    "content": {"text": "x", "encoding": "gzip"},
                                },
                            }
                        ]
                    }
                }
            ).encode(),  # fmt: skip
            f"entries[0] (GET {BASE}/x): response.content.encoding 'gzip' cannot be read",
        ),
        (
            json.dumps(
                {
                    "log": {
                        "entries": [
                            {
                                **entry("GET", "/x"),
                                "response": {
                                    "status": 200,
                                    "content": {"text": "%%", "encoding": "base64"},
                                },
                            }
                        ]
                    }
                }
            ).encode(),  # fmt: skip
            f"entries[0] (GET {BASE}/x): response.content.text is not valid base64",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_entry(data: bytes, message: str) -> None:
    with pytest.raises(har.HarInvalid) as refused:
        har.parse_har(data)
    assert message in str(refused.value)


def test_a_recording_with_nothing_to_replay_or_too_much_is_refused() -> None:
    with pytest.raises(har.HarInvalid) as refused:
        convert(entry("GET", "/app.js", mime="text/javascript"))
    assert str(refused.value) == (
        f"no request is left to replay (skipped entries[0] (GET {BASE}/app.js): "
        "a static asset (--include-static keeps it))"
    )
    many = [entry("GET", f"/page/{n}", at_s=n) for n in range(MAX_STEPS + 1)]
    with pytest.raises(har.HarInvalid, match=f"a flow has at most {MAX_STEPS} steps"):
        convert(*many)


def test_a_base64_body_is_read_as_text() -> None:
    recorded = entry("GET", "/data", mime="application/json")
    recorded["response"]["content"] = {
        "mimeType": "application/json",
        "text": "eyJpZCI6ICJhYmMxMjMifQ==",  # {"id": "abc123"}
        "encoding": "base64",
    }
    recording = convert(recorded, entry("GET", "/items/abc123/", at_s=1))
    assert recording.document["steps"][1]["path"] == "/items/{{ id }}/"


def test_a_response_nested_too_deep_to_walk_offers_nothing() -> None:
    deep = "[" * 5000 + "]" * 5000
    assert har.json_offers(0, deep) == []
    assert har.json_offers(0, '{"data": {"id": 4711}}')[0].expression == "$.data.id"
