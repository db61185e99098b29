"""Flow mode against real servers: extraction, sessions, polling and try_once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadtests.engine import EngineConfig, Extraction, Poll, Step, run, try_once
from tests.engine.flow_server import FlowServer


def flow(base_url: str, *steps: Step, **fields: Any) -> EngineConfig:
    fields.setdefault("load_model", "closed")
    fields.setdefault("users", 1)
    fields.setdefault("duration_s", 1.0)
    fields.setdefault("abort_error_rate_pct", None)
    return EngineConfig(target_base_url=base_url, steps=steps, mode="flow", **fields)


def three_rows() -> dict[str, Any]:
    """Exactly three iterations: a unique data set of three rows, and time to use them."""
    rows = ({"n": "1"}, {"n": "2"}, {"n": "3"})
    return {"data_rows": rows, "data_order": "unique", "duration_s": 30.0}


def create_job(ready_after: int = 1, *extract: Extraction) -> Step:
    return Step(
        "create",
        "POST",
        f"/jobs?ready_after={ready_after}",
        expected_statuses=(),
        extract=extract or (Extraction("job_id", "json", "$.id"),),
    )


@pytest.mark.parametrize(
    ("source", "expression", "expected"),
    [
        ("json", "$.id", "1"),
        ("json", "$['status']", "pending"),
        ("header", "x-job-id", "1"),
        ("header", r"Content-Type ~ ^application/(\w+)", "json"),
        ("cookie", "job", "1"),
    ],
)
def test_it_extracts_each_kind_from_a_real_response(
    flow_target: FlowServer, source: str, expression: str, expected: str
) -> None:
    config = flow(
        flow_target.base_url,
        create_job(1, Extraction("value", source, expression)),
        Step("use", "GET", "/seen?value={{ value }}"),
    )
    trace = try_once(config)
    assert [entry["step"] for entry in trace] == ["create", "use"]
    assert trace[0]["extracted"] == {"value": expected}
    assert trace[1]["url"].endswith(f"/seen?value={expected}")
    assert flow_target.seen == [f"value={expected}"]


def test_a_header_regex_that_does_not_match_is_a_failed_extraction(
    flow_target: FlowServer,
) -> None:
    config = flow(
        flow_target.base_url,
        create_job(1, Extraction("value", "header", r"X-Job-Id ~ ^job-(\d+)$")),
        Step("use", "GET", "/seen?value={{ value }}"),
    )
    trace = try_once(config)
    assert [entry["step"] for entry in trace] == ["create"]
    assert trace[0]["error"].endswith(r"^job-(\d+)$ does not match the X-Job-Id header")
    assert flow_target.seen == []


def test_it_extracts_with_a_regex_group(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step("text", "GET", "/text", extract=(Extraction("order", "regex", r"order=(\S+)"),)),
        Step("use", "GET", "/seen?order={{ order }}"),
    )
    trace = try_once(config)
    assert trace[0]["extracted"] == {"order": "ORD-42"}
    assert flow_target.seen == ["order=ORD-42"]


def test_a_failed_extraction_is_a_check_failure_that_ends_the_iteration(
    flow_target: FlowServer,
) -> None:
    config = flow(
        flow_target.base_url,
        create_job(1, Extraction("batch_id", "json", "$.batch.id")),
        Step("use", "GET", "/seen?id={{ batch_id }}"),
        duration_s=1.0,
    )
    result = run(config)
    assert result.iterations > 0
    assert result.iterations_failed == result.iterations
    assert flow_target.seen == []  # the second step never ran
    assert result.per_step["use"]["requests"] == 0
    assert result.per_step["create"]["errors"] == result.per_step["create"]["requests"]
    failure = result.errors_by_class["check_failed"]
    assert failure["count"] == result.iterations
    assert failure["sample"] == "create: extract batch_id: $.batch.id is missing"


def test_a_session_logs_in_through_a_csrf_form(flow_target: FlowServer) -> None:
    token = r'name="csrfmiddlewaretoken" value="([0-9a-f]+)"'
    config = flow(
        flow_target.base_url,
        Step("form", "GET", "/login", extract=(Extraction("csrf", "regex", token),)),
        Step(
            "login",
            "POST",
            "/login",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body="csrfmiddlewaretoken={{ csrf }}&username=user{{ user }}&password=secret",
            expected_statuses=(302,),
        ),
        Step("me", "GET", "/me", check_json_field="user", check_json_value="user1"),
        duration_s=1.0,
    )
    trace = try_once(config)
    assert [(entry["step"], entry["status"]) for entry in trace] == [
        ("form", 200),
        ("login", 302),
        ("me", 200),
    ]
    assert "csrftoken=" in trace[1]["request_headers"]["Cookie"]
    assert "sessionid=" in trace[2]["request_headers"]["Cookie"]
    assert json.loads(trace[2]["body"]) == {"user": "user1"}
    result = run(config)
    assert result.errors == 0
    assert result.iterations > 0 and result.iterations_failed == 0
    assert result.per_step["me"]["requests"] == result.iterations


def test_without_the_session_cookie_the_page_refuses(flow_target: FlowServer) -> None:
    trace = try_once(flow(flow_target.base_url, Step("me", "GET", "/me", expected_statuses=())))
    assert trace[0]["status"] == 401
    assert trace[0]["error"] == "me: expected status 200-399, got 401"


def test_it_follows_a_same_origin_redirect_with_the_new_cookie(flow_target: FlowServer) -> None:
    token = r'name="csrfmiddlewaretoken" value="([0-9a-f]+)"'
    config = flow(
        flow_target.base_url,
        Step("form", "GET", "/login", extract=(Extraction("csrf", "regex", token),)),
        Step(
            "login",
            "POST",
            "/login",
            body="csrfmiddlewaretoken={{ csrf }}&username=ann&password=secret",
            extract=(Extraction("who", "json", "$.user"),),
        ),
        follow_redirects=True,
    )
    trace = try_once(config)
    assert [(entry["step"], entry["method"], entry["status"]) for entry in trace] == [
        ("form", "GET", 200),
        ("login", "POST", 302),
        ("login", "GET", 200),
    ]
    assert trace[-1]["extracted"] == {"who": "ann"}


def test_a_poll_repeats_until_the_value_and_counts_each_attempt(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        create_job(3),
        Step(
            "wait",
            "GET",
            "/jobs/{{ job_id }}",
            poll=Poll(until_path="$.status", until_value="done", max_attempts=5, interval_s=0.01),
            extract=(Extraction("gets", "json", "$.gets"),),
        ),
        **three_rows(),
    )
    trace = try_once(config)
    assert [(entry["step"], entry["attempt"]) for entry in trace] == [
        ("create", 1), ("wait", 1), ("wait", 2), ("wait", 3),
    ]  # fmt: skip
    assert trace[-1]["extracted"] == {"gets": "3"}
    result = run(config)
    assert (result.status, result.reason) == ("completed", "data set exhausted")
    assert result.errors == 0 and result.iterations == 3
    wait = result.per_step["wait"]
    assert wait["attempts"] == wait["requests"] == 3 * 3
    assert wait["polls_exhausted"] == 0


def test_an_exhausted_poll_is_an_error_of_its_own(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        create_job(10),
        Step(
            "wait",
            "GET",
            "/jobs/{{ job_id }}",
            poll=Poll(until_path="$.status", until_value="done", max_attempts=4, interval_s=0),
        ),
        Step("after", "GET", "/seen"),
        **three_rows(),
    )
    result = run(config)
    assert result.iterations == result.iterations_failed == 3
    wait = result.per_step["wait"]
    assert wait["attempts"] == 4 * 3
    assert wait["polls_exhausted"] == wait["errors"] == 3
    exhausted = result.errors_by_class["poll_exhausted"]
    assert exhausted["sample"] == 'wait: $.status was "pending" after 4 attempts'
    assert flow_target.seen == []


def test_try_once_shows_each_request_and_response(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step(
            "create",
            "POST",
            "/jobs?ready_after=1",
            headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
            body='{"note": "{{ random_choice(a) }}"}',
            expected_statuses=(201,),
            extract=(Extraction("job_id", "json", "$.id"),),
        ),
    )
    (entry,) = try_once(config)
    assert entry["method"] == "POST"
    assert entry["url"] == f"{flow_target.base_url}/jobs?ready_after=1"
    assert entry["request_headers"]["Authorization"] == "Bearer t0ken"
    assert entry["request_body"] == '{"note": "a"}'
    assert entry["status"] == 201
    assert entry["response_headers"]["X-Job-Id"] == "1"
    assert json.loads(entry["body"]) == {"id": 1, "status": "pending"}
    assert entry["elapsed_ms"] > 0
    assert entry["extracted"] == {"job_id": "1"}
    assert entry["error"] is None


def test_try_once_reports_an_unreachable_target() -> None:
    config = flow("http://127.0.0.1:9", Step("home", "GET", "/"))
    (entry,) = try_once(config)
    assert entry["status"] is None
    assert entry["error"].startswith("home: connection refused")


def test_a_head_step_ends_without_a_body_and_the_flow_goes_on(target: str) -> None:
    config = flow(
        target,
        Step("probe", "HEAD", "/json", expected_statuses=(200,)),
        Step("read", "GET", "/json", extract=(Extraction("id", "json", "$.data.id"),)),
    )
    trace = try_once(config)
    assert [(entry["step"], entry["status"], entry["body"]) for entry in trace] == [
        ("probe", 200, ""),
        ("read", 200, '{"status": "ok", "data": {"id": 1}}'),
    ]
    assert trace[1]["extracted"] == {"id": "1"}
    result = run(config)
    assert result.errors == 0 and result.iterations > 0
