"""Honest verdicts: a run where nothing succeeded, or that mostly failed, is never `passed`,
and the run page, the summary JSON and the CLI name the rule that decided."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from loadtests import adhoc, documents, lifecycle, reports, services
from loadtests.engine import RunResult
from loadtests.engine import run as run_engine
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep
from stats.histogram import Histogram
from tests.conftest import closed_port
from tests.loadtests.test_runs import run_cli

pytestmark = pytest.mark.django_db


def adhoc_run(url: str, *, users: int = 2, duration_s: int = 1) -> LoadTestRun:
    """A run as a worker holds it while the engine runs: claimed, so `running`."""
    frozen = adhoc.adhoc_config(url, users=users, duration_s=duration_s)
    run = adhoc.create_adhoc_run(frozen)
    LoadTestRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    return run


def finalise_real_run(run: LoadTestRun) -> LoadTestRun:
    """Run the engine on the run's frozen config against a real server, then judge it."""
    result = run_engine(documents.engine_config_from(run.config))
    return lifecycle.finalise(run, result)


def rules(run: LoadTestRun) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in run.threshold_results}


@pytest.fixture
def plain_definition(target_url: str) -> LoadTestDefinition:
    """No thresholds, abort blank: only the built-in rules judge it."""
    definition = LoadTestDefinition.objects.create(
        name="plain",
        target_base_url=target_url,
        load_model="closed",
        users=4,
        duration_s=2,
        timeout_s=2,
        abort_error_rate_pct=None,
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def test_it_fails_a_run_whose_every_connection_was_refused() -> None:
    run = finalise_real_run(adhoc_run(f"http://127.0.0.1:{closed_port()}/"))
    assert run.requests > 0 and run.errors == run.requests
    assert (run.status, run.passed) == ("failed", False)
    assert run.status_reason.startswith("No request succeeded")
    assert "any_success" in run.status_reason
    any_success = rules(run)["any_success"]
    assert any_success["implicit"] is True
    assert (any_success["actual"], any_success["passed"]) == (0, False)
    assert reports.exit_code(run) == 1


def test_it_fails_a_run_whose_every_answer_was_a_500(target_url: str) -> None:
    run = finalise_real_run(adhoc_run(f"{target_url}/status/500"))
    assert run.errors_by_class["status_500"]["count"] == run.errors == run.requests > 0
    assert (run.status, run.passed) == ("failed", False)
    assert not rules(run)["any_success"]["passed"]
    assert not rules(run)["default_error_rate_pct"]["passed"]
    assert "No request succeeded" in run.status_reason


def test_it_fails_a_run_that_sent_no_request_at_all() -> None:
    run = adhoc_run("http://127.0.0.1:8001/")
    empty = RunResult(
        status="completed", reason="", duration_s=1.0, requests=0, errors=0,
        throughput_rps=0.0, latency=Histogram(), service=Histogram(), errors_by_class={},
        per_step={}, health={"valid": True},
    )  # fmt: skip
    run = lifecycle.finalise(run, empty)
    assert (run.status, run.passed) == ("failed", False)
    assert run.status_reason == "No request succeeded: no request was sent (rule any_success)."


def test_more_than_the_default_error_rate_fails_a_run_without_thresholds(
    plain_definition: LoadTestDefinition,
) -> None:
    # Half the requests answer 500: well above the default limit, though some succeed.
    LoadTestStep.objects.create(definition=plain_definition, name="broken", path="/status/500")
    run = lifecycle.execute(services.create_run(plain_definition).pk)
    assert 0 < run.errors < run.requests
    assert run.error_rate_pct > reports.DEFAULT_ERROR_RATE_LIMIT_PCT
    assert (run.status, run.passed) == ("failed", False)
    default = rules(run)["default_error_rate_pct"]
    assert default == {
        "name": "default_error_rate_pct",
        "label": "error rate (%), default limit",
        "limit": reports.DEFAULT_ERROR_RATE_LIMIT_PCT,
        "actual": run.error_rate_pct,
        "kind": "max",
        "passed": False,
        "implicit": True,
    }
    assert rules(run)["any_success"]["passed"] is True
    assert "default_error_rate_pct" in run.status_reason
    assert "No request succeeded" not in run.status_reason


def test_an_explicit_error_rate_threshold_replaces_the_default(
    plain_definition: LoadTestDefinition,
) -> None:
    LoadTestStep.objects.create(definition=plain_definition, name="broken", path="/status/500")
    plain_definition.threshold_error_rate_pct = 90
    plain_definition.save()
    run = lifecycle.execute(services.create_run(plain_definition).pk)
    assert run.error_rate_pct > reports.DEFAULT_ERROR_RATE_LIMIT_PCT
    assert (run.status, run.passed) == ("passed", True), run.status_reason
    assert set(rules(run)) == {"any_success", "error_rate_pct"}
    assert rules(run)["error_rate_pct"]["implicit"] is False


def test_an_explicit_threshold_still_fails_a_run_and_names_its_rule(
    plain_definition: LoadTestDefinition,
) -> None:
    plain_definition.threshold_p95_ms = 0.001
    plain_definition.save()
    run = lifecycle.execute(services.create_run(plain_definition).pk)
    assert run.errors == 0
    assert (run.status, run.passed) == ("failed", False)
    assert [item["name"] for item in run.threshold_results if not item["passed"]] == ["p95_ms"]
    assert run.status_reason.startswith("Threshold not met: p95 latency (ms)")
    assert "(rule p95_ms)" in run.status_reason


def test_a_clean_run_passes_and_says_which_rules_held(
    plain_definition: LoadTestDefinition,
) -> None:
    run = lifecycle.execute(services.create_run(plain_definition).pk)
    assert (run.status, run.passed) == ("passed", True), run.status_reason
    assert run.errors == 0
    assert set(rules(run)) == {"any_success", "default_error_rate_pct"}
    assert all(item["passed"] and item["implicit"] for item in run.threshold_results)
    assert run.status_reason.startswith("All rules met: at least one request succeeded")


def test_cancelled_and_aborted_runs_keep_their_own_status() -> None:
    for status, expected, passed in (
        ("cancelled", "cancelled", None),
        ("aborted", "aborted", False),
    ):
        run = adhoc_run("http://127.0.0.1:8001/")
        result = RunResult(
            status=status, reason=f"{status} on purpose", duration_s=0.5, requests=0, errors=0,
            throughput_rps=0.0, latency=Histogram(), service=Histogram(), errors_by_class={},
            per_step={}, health={"valid": True},
        )  # fmt: skip
        run = lifecycle.finalise(run, result)
        assert (run.status, run.passed, run.status_reason) == (
            expected,
            passed,
            f"{status} on purpose",
        )


@pytest.mark.parametrize(
    ("requests", "errors", "failing"),
    [
        (0, 0, ["any_success"]),
        (10, 10, ["any_success", "default_error_rate_pct"]),
        (100, 5, []),  # exactly at the limit: within it
        (10_000, 501, ["default_error_rate_pct"]),
    ],
)
def test_the_built_in_rules_by_counts(requests: int, errors: int, failing: list[str]) -> None:
    summary = {
        "requests": requests,
        "errors": errors,
        "error_rate_pct": 100.0 * errors / requests if requests else 0.0,
    }
    results = reports.evaluate_thresholds({"error_rate_pct": None}, summary)
    assert [item["name"] for item in results if not item["passed"]] == failing


def test_the_cli_exits_non_zero_when_every_connection_was_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    code, out, err = run_cli("url", url, "--users", "1", "--duration", "1")
    assert code == 1, err
    assert "failed" in out
    assert "No request succeeded" in out and "any_success" in out

    code, out, _ = run_cli("url", url, "--users", "1", "--duration", "1", "--json")
    assert code == 1
    summary = json.loads(out)
    assert (summary["status"], summary["passed"]) == ("failed", False)
    assert summary["status_reason"].startswith("No request succeeded")
    failed = [item for item in summary["thresholds"] if not item["passed"]]
    assert failed[0]["name"] == "any_success" and failed[0]["implicit"] is True


def test_the_page_and_the_summary_json_name_the_deciding_rule(
    viewer_client: Any, plain_definition: LoadTestDefinition
) -> None:
    plain_definition.target_base_url = f"http://127.0.0.1:{closed_port()}"
    plain_definition.duration_s = 1
    plain_definition.save()
    run = lifecycle.execute(services.create_run(plain_definition).pk)
    assert run.status == "failed"

    summary = json.loads(viewer_client.get(f"/runs/{run.pk}/summary.json").content)
    assert summary["status_reason"].startswith("No request succeeded")
    assert {item["name"] for item in summary["thresholds"]} == {
        "any_success",
        "default_error_rate_pct",
    }
    page = viewer_client.get(f"/runs/{run.pk}/").content.decode()
    assert "No request succeeded" in page
    assert 'data-rule="any_success"' in page and "at least one request succeeded" in page
    live = viewer_client.get(f"/runs/{run.pk}/live/").json()
    assert live["status_reason"].startswith("No request succeeded")
    assert 'data-rule="default_error_rate_pct"' in live["summary_html"]
