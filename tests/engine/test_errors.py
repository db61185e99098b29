from __future__ import annotations

from loadtests.engine import run
from tests.engine.helpers import closed, open_, step
from tests.targets import closed_port


def test_timeouts_are_classified(target: str) -> None:
    result = run(closed(target, step("/hang"), users=2, timeout_s=0.3, abort_error_rate_pct=None))
    assert result.errors_by_class["timeout"]["count"] >= 4
    assert "0.3 s" in result.errors_by_class["timeout"]["sample"]
    assert result.errors == result.requests
    assert result.latency.total_count == 0  # no response, no latency


def test_connection_refused_is_classified() -> None:
    config = closed(f"http://127.0.0.1:{closed_port()}", duration_s=0.5, abort_error_rate_pct=None)
    result = run(config)
    entry = result.errors_by_class["connect_refused"]
    assert entry["count"] == result.errors == result.requests > 0
    assert "refused" in entry["sample"]


def test_a_reset_connection_is_classified(target: str) -> None:
    result = run(closed(target, step("/reset"), duration_s=0.5, abort_error_rate_pct=None))
    assert result.errors_by_class["reset"]["count"] == result.errors > 0
    assert result.errors_by_class["reset"]["sample"]


def test_unexpected_statuses_are_classified_by_code(target: str) -> None:
    config = closed(
        target, step("/status/500", name="boom"), step("/status/404", name="missing"),
        step("/status/201", name="created", expected_statuses=(201,)),
        users=2, duration_s=0.5, abort_error_rate_pct=None,
    )  # fmt: skip
    result = run(config)
    assert set(result.errors_by_class) == {"status_500", "status_404"}
    assert result.errors_by_class["status_500"]["sample"] == "boom: expected status 200, got 500"
    assert result.per_step["created"]["errors"] == 0 < result.per_step["created"]["requests"]
    assert result.per_step["boom"]["errors"] == result.per_step["boom"]["requests"]
    # A wrong status is still a response: its latency is recorded.
    assert result.latency.total_count == result.requests


def test_check_failures_are_classified_with_the_reason(target: str) -> None:
    config = closed(
        target,
        step("/json", name="field", check_json_field="data.id", check_json_value=2),
        step("/ok", name="text", check_contains="nope"),
        step("/json", name="good", check_json_field="status", check_json_value="ok"),
        duration_s=0.5, abort_error_rate_pct=None,
    )  # fmt: skip
    result = run(config)
    assert result.errors_by_class["check_failed"]["count"] == result.errors > 0
    assert result.per_step["good"]["errors"] == 0
    assert result.per_step["field"]["errors"] == result.per_step["field"]["requests"]
    assert result.per_step["text"]["errors"] == result.per_step["text"]["requests"]
    sample = result.errors_by_class["check_failed"]["sample"]
    assert "data.id is 1, expected 2" in sample or "does not contain 'nope'" in sample


def test_the_open_model_drops_requests_beyond_its_backlog(target: str) -> None:
    config = open_(
        target, step("/hang"), rate_rps=400, duration_s=1, max_connections=1, max_backlog=50,
        timeout_s=5, abort_error_rate_pct=None,
    )  # fmt: skip
    result = run(config)
    dropped = result.errors_by_class["dropped"]
    assert dropped["count"] >= 300
    assert "50 requests already waiting for one of 1 connections" in dropped["sample"]


def test_a_tls_handshake_failure_is_classified(target: str) -> None:
    # An https URL pointing at a plain-HTTP port fails in the handshake.
    config = closed(
        target.replace("http://", "https://"), duration_s=0.3, abort_error_rate_pct=None
    )
    result = run(config)
    assert result.errors_by_class["tls"]["count"] == result.errors > 0
    assert "TLS" in result.errors_by_class["tls"]["sample"]


def test_a_reused_connection_dropped_before_any_answer_is_retried_for_idempotent_requests(
    target: str,
) -> None:
    # /idle-close answers a connection's first request and drops the connection on the next,
    # as a server whose keep-alive timeout fires while the request is on its way.
    for config in (
        closed(target, step("/idle-close"), users=2, duration_s=1),
        open_(target, step("/idle-close"), rate_rps=50, duration_s=1),
    ):
        result = run(config)
        assert result.errors == 0, result.errors_by_class
        assert result.requests >= 10
        # Every request after a connection's first was sent twice: once on the dropped
        # connection, then on a new one.
        assert result.health["stale_retries"] >= result.requests - config.max_connections
        assert result.connections_opened >= result.health["stale_retries"]


def test_a_non_idempotent_request_on_a_dropped_connection_is_an_error(target: str) -> None:
    config = closed(
        target, step("/idle-close", method="POST", body="{}"), users=1, duration_s=0.5,
        abort_error_rate_pct=None,
    )  # fmt: skip
    result = run(config)
    assert result.health["stale_retries"] == 0
    assert result.errors >= 1
    # Every second request, the one on a reused connection, fails.
    assert abs(result.errors - result.requests / 2) <= 1
    (error_class,) = result.errors_by_class
    assert "closed the connection" in result.errors_by_class[error_class]["sample"]
