from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from loadtests import datasets, flowcheck, lifecycle, reports, runjson, services
from loadtests.engine import IntervalSnapshot
from loadtests.models import DataSet, LoadTestDefinition, LoadTestRun, LoadTestStep, RunStatus
from stats.histogram import Histogram


@pytest.mark.django_db
def test_the_frozen_config_records_the_hash_and_a_changed_file_ends_the_run_in_error(
    flow_definition: LoadTestDefinition, data_set: DataSet
) -> None:
    run = services.create_run(flow_definition)
    assert run.config["data_set"] == {
        "name": "skus",
        "sha256": data_set.sha256,
        "order": "sequential",
    }
    data_set.set_file(datasets.parse(b"sku,qty\nC-3,1\n", max_mb=10))
    data_set.save()
    done = lifecycle.execute(run.pk)
    assert done is not None and done.status == RunStatus.ERROR
    assert "The data set 'skus' changed since this run was queued" in done.status_reason
    assert done.requests == 0 and not done.intervals.exists()


@pytest.mark.django_db
def test_a_flow_run_stores_iteration_figures_each_second_and_at_the_end(
    flow_definition: LoadTestDefinition, admin_client: Any
) -> None:
    done = lifecycle.execute(services.create_run(flow_definition).pk)
    assert done is not None and done.status == RunStatus.PASSED, done.status_reason
    intervals = list(done.intervals.all())
    assert done.iterations > 10 and done.iterations_failed == 0
    assert sum(i.iterations for i in intervals) == done.iterations
    assert all(i.iteration_histogram for i in intervals if i.iterations)
    merged = reports.merged_iterations(intervals)
    assert merged is not None and merged.total_count == done.iterations
    assert Histogram.decode(done.iteration_histogram).total_count == done.iterations
    assert 0 < done.iteration_p50_ms <= done.iteration_p95_ms <= done.iteration_p99_ms
    # Two requests per iteration, each step in the per-step figures.
    assert done.requests >= 2 * done.iterations and set(done.steps_summary) == {"read", "echo"}
    (rule,) = [t for t in done.threshold_results if t["name"] == "iteration_p95_ms"]
    assert rule["passed"] and rule["actual"] == done.iteration_p95_ms
    shown = runjson.run_json(done)
    assert shown["iterations"]["count"] == done.iterations
    assert shown["iterations"]["p95_ms"] == done.iteration_p95_ms
    assert "flow-secret-token" not in str(shown)
    body = admin_client.get(f"/runs/{done.pk}/").content.decode()
    assert 'id="iterations"' in body and f'id="stat-iterations">{done.iterations}<' in body


@pytest.mark.django_db
def test_a_journey_over_its_iteration_threshold_fails_the_run(
    flow_definition: LoadTestDefinition,
) -> None:
    flow_definition.steps.filter(name="read").update(path="/delay?ms=30")
    flow_definition.steps.filter(name="read").update(extract=[])
    flow_definition.steps.filter(name="echo").update(path="/echo")
    flow_definition.threshold_iteration_p95_ms = 5
    flow_definition.save()
    done = lifecycle.execute(services.create_run(flow_definition).pk)
    assert done is not None and done.status == RunStatus.FAILED
    assert (
        "iteration p95 (ms)" in done.status_reason and "rule iteration_p95_ms" in done.status_reason
    )


@pytest.mark.django_db
def test_a_polled_step_reports_its_attempts_and_an_exhausted_poll_names_the_step(
    flow_definition: LoadTestDefinition,
) -> None:
    flow_definition.steps.filter(name="echo").update(
        method="GET", body="", poll_until_path="$.status", poll_until_value="never",
        poll_max_attempts=2, poll_interval_s=0.05, path="/json",
    )  # fmt: skip
    flow_definition.abort_error_rate_pct = None
    flow_definition.save()
    done = lifecycle.execute(services.create_run(flow_definition).pk)
    assert done is not None
    echo = done.steps_summary["echo"]
    # Each exhausted poll made its two attempts (one may have been cut short by the end).
    assert echo["polls_exhausted"] > 0
    assert 2 * echo["polls_exhausted"] <= echo["attempts"] <= 2 * echo["polls_exhausted"] + 2
    sample = done.errors_by_class["poll_exhausted"]["sample"]
    assert sample.startswith("echo: $.status was")
    assert done.iterations_failed == done.iterations > 0


@pytest.mark.django_db
def test_a_reaped_flow_run_keeps_the_iterations_it_recorded(
    flow_definition: LoadTestDefinition,
) -> None:
    run = services.create_run(flow_definition)
    started = timezone.now()
    LoadTestRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=started)
    journeys = Histogram()
    for value_us in (100_000, 200_000, 300_000):
        journeys.record(value_us)
    snapshot = IntervalSnapshot(
        index=0, start_offset_s=0, length_s=1, requests=0, errors=0, errors_by_class={},
        error_samples={}, latency_histogram="", service_histogram="", latency_p50_ms=1,
        latency_p95_ms=1, latency_p99_ms=1, latency_max_ms=1, throughput_rps=6, target=2,
        active_users=2, in_flight=0, late_starts=0,
        cpu_pct=1, loop_lag_ms=0, per_step={}, iteration_histogram=journeys.encode(), iterations=3,
        iterations_failed=1,
    )  # fmt: skip
    assert lifecycle.store_interval(run, snapshot, started) is not None
    run.refresh_from_db()
    assert (run.iterations, run.iterations_failed) == (3, 1)
    assert lifecycle.reap_stale_runs(stale_after_s=-1) == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED
    assert (run.iterations, run.iterations_failed) == (3, 1)
    assert run.iteration_p50_ms == pytest.approx(200, rel=0.01)


@pytest.mark.django_db(transaction=True)
def test_a_flow_logs_in_through_the_real_login_form_with_csrf(
    live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user("flowuser", password="flow-pass-1234")
    definition = LoadTestDefinition.objects.create(
        name="login", mode="flow", target_base_url=live_server.url, users=1, duration_s=1
    )
    steps = [
        {"name": "login form", "path": "/accounts/login/",
         "extract": [{"variable": "csrf", "from": "regex",
                      "expression": 'name="csrfmiddlewaretoken" value="([^"]+)"'}]},
        {"name": "log in", "method": "POST", "path": "/accounts/login/",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"},
         "body": "csrfmiddlewaretoken={{ csrf }}&username=flowuser&password=flow-pass-1234",
         "expected_statuses": "302"},
        # Without the session cookie this redirects to the login form: only 200 passes.
        {"name": "dashboard", "path": "/", "expected_statuses": "200"},
    ]  # fmt: skip
    for order, step in enumerate(steps):
        LoadTestStep.objects.create(definition=definition, order=order, **step)
    exchanges = flowcheck.try_once(definition)
    form, login, dashboard = exchanges
    assert form["status"] == 200 and len(form["extracted"]["csrf"]) > 20
    assert login["status"] == 302 and login["error"] is None
    assert dashboard["status"] == 200 and dashboard["error"] is None
    assert dashboard["request_headers"]["Cookie"] == "••••"  # the session went along, masked
