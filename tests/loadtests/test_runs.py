from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from loadtests import lifecycle, reports, services
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, RunInterval
from stats.histogram import Histogram
from tests.conftest import closed_port


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("loadtest", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_a_local_run_stores_intervals_and_a_passing_summary(definition: LoadTestDefinition) -> None:
    run = services.create_run(definition)
    done = lifecycle.execute(run.pk)
    assert done is not None
    assert done.status == "passed", done.status_reason
    intervals = list(done.intervals.all())
    assert 2 <= len(intervals) <= 3
    assert sum(i.requests for i in intervals) == done.requests > 50
    assert done.errors == 0
    assert done.latency_p50_ms is not None and 0 < done.latency_p50_ms <= done.latency_p99_ms
    assert done.service_p99_ms is not None
    assert done.valid is True
    assert {step for step in done.steps_summary} == {"ok", "json"}
    assert done.threshold_results and all(t["passed"] for t in done.threshold_results)
    merged, _ = reports.merged_histograms(intervals)
    assert (
        merged.total_count == Histogram.decode(done.latency_histogram).total_count == done.requests
    )


@pytest.mark.django_db
def test_a_run_is_not_started_twice(definition: LoadTestDefinition) -> None:
    run = services.create_run(definition)
    assert lifecycle.execute(run.pk) is not None
    assert lifecycle.execute(run.pk) is None
    assert RunInterval.objects.filter(run=run).count() <= 3


@pytest.mark.django_db
def test_thresholds_fail_and_check_failures_are_counted(definition: LoadTestDefinition) -> None:
    LoadTestStep.objects.filter(name="json").update(check_value='"nope"')
    definition.abort_error_rate_pct = None
    definition.save()
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == "failed"
    assert run.passed is False
    assert run.errors_by_class["check_failed"]["count"] > 0
    failed = [t for t in run.threshold_results if not t["passed"]]
    assert [t["name"] for t in failed] == ["error_rate_pct"]
    assert "error rate" in run.status_reason


@pytest.mark.django_db
def test_the_cli_exit_codes_and_json(definition: LoadTestDefinition) -> None:
    code, out, err = run_cli("run", "smoke", "--local", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "passed"
    for key in ("id", "requests", "errors", "throughput_rps", "errors_by_class", "valid"):
        assert key in summary
    for kind in ("latency_ms", "service_time_ms"):
        assert set(summary[kind]) >= {"p50", "p90", "p95", "p99", "p999", "max", "mean"}
    assert "run #" in err  # progress goes to stderr

    LoadTestDefinition.objects.filter(pk=definition.pk).update(threshold_p95_ms=0.001)
    code, out, _ = run_cli("run", str(definition.pk), "--local", "--json")
    assert code == 1
    assert json.loads(out)["status"] == "failed"

    code, _, _ = run_cli("run", "no-such-definition", "--local")
    assert code == 2


@pytest.mark.django_db
def test_the_cli_runs_an_ad_hoc_url_and_stores_it(target_url: str) -> None:
    code, out, err = run_cli("url", f"{target_url}/ok", "--rate", "50", "--duration", "2", "--json")
    assert code == 0, err
    summary = json.loads(out)
    run = LoadTestRun.objects.get(pk=summary["id"])
    assert run.trigger == "cli" and run.definition is None
    assert 80 <= summary["requests"] <= 110
    assert run.config["load_model"] == "open"


@pytest.mark.django_db
def test_the_cli_refuses_hosts_outside_the_allow_list_and_bad_options() -> None:
    code, _, _ = run_cli("url", "http://example.com/", "--users", "1", "--duration", "1")
    assert code == 2
    assert not LoadTestRun.objects.exists()
    with pytest.raises(Exception, match="--think"):
        call_command("loadtest", "url", "http://127.0.0.1/", "--users", "1", "--duration", "1",
                     "--think", "2,1")  # fmt: skip


@pytest.mark.django_db
def test_connection_errors_are_classified(definition: LoadTestDefinition) -> None:
    definition.target_base_url = f"http://127.0.0.1:{closed_port()}"
    definition.abort_error_rate_pct = None
    definition.save()
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == "failed"
    assert run.errors_by_class["connect_refused"]["count"] == run.errors > 0
    assert run.errors_by_class["connect_refused"]["sample"]


@pytest.mark.django_db
def test_the_abort_threshold_stops_a_failing_run(definition: LoadTestDefinition) -> None:
    LoadTestStep.objects.filter(definition=definition).update(path="/status/500")
    definition.duration_s = 30
    definition.save()
    run = lifecycle.execute(services.create_run(definition).pk)
    assert run.status == "aborted"
    assert run.passed is False
    assert run.duration_s < 15
    assert run.errors_by_class["status_500"]["count"] > 0


@pytest.mark.django_db(transaction=True)
def test_cancel_ends_a_running_run_within_a_second_keeping_its_data(
    definition: LoadTestDefinition,
) -> None:
    definition.duration_s = 30
    definition.save()
    run = services.create_run(definition)

    asked_at: list[float] = []

    def cancel() -> None:
        from django.db import connection

        try:
            asked_at.append(time.monotonic())
            lifecycle.request_cancel(run)
        finally:
            connection.close()  # this thread's own session would keep the test database in use

    # The timer starts before execute(), whose clock starts once the run is claimed: the run
    # lasts less than the timer's 2 s by that much, never more than until it ended.
    timer = threading.Timer(2.0, cancel)
    timer.start()
    done = lifecycle.execute(run.pk)
    ended_at = time.monotonic()
    timer.join()
    assert done.status == "cancelled"
    assert 0 < done.duration_s < 30  # of the 30 s asked for
    assert ended_at - asked_at[0] < 3.0  # ends within a second of the request, with room
    assert done.requests > 0
    assert done.requests == sum(done.intervals.values_list("requests", flat=True))


@pytest.mark.django_db
def test_the_reaper_marks_silent_runs_interrupted_keeping_their_intervals(
    definition: LoadTestDefinition,
) -> None:
    run = services.create_run(definition)
    stale = timezone.now() - timedelta(minutes=5)
    LoadTestRun.objects.filter(pk=run.pk).update(
        status="running", started_at=stale, heartbeat_at=stale
    )
    for second, values in enumerate(([1000, 2000, 3000], [4000, 5000])):
        hist = Histogram()
        for value in values:
            hist.record(value)
        RunInterval.objects.create(
            run=run, index=second, started_at=stale, requests=len(values), errors=second,
            latency_histogram=hist.encode(), service_histogram=hist.encode(),
            errors_by_class={"timeout": second} if second else {},
        )  # fmt: skip
    fresh = services.create_run(definition)
    LoadTestRun.objects.filter(pk=fresh.pk).update(status="running", heartbeat_at=timezone.now())

    assert lifecycle.reap_stale_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == "interrupted"
    assert run.requests == 5 and run.errors == 1
    assert run.latency_max_ms == pytest.approx(5.0, rel=0.01)
    assert run.errors_by_class == {"timeout": {"count": 1, "sample": ""}}
    assert LoadTestRun.objects.get(pk=fresh.pk).status == "running"


@pytest.mark.django_db
def test_exports_summary_intervals_and_histogram_log(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = lifecycle.execute(services.create_run(definition).pk)
    summary = admin_client.get(f"/runs/{run.pk}/summary.json")
    assert summary.status_code == 200
    assert json.loads(summary.content)["requests"] == run.requests
    rows = list(
        csv.DictReader(
            io.StringIO(admin_client.get(f"/runs/{run.pk}/intervals.csv").content.decode())
        )
    )
    assert sum(int(r["requests"]) for r in rows) == run.requests
    hlog = admin_client.get(f"/runs/{run.pk}/latency.hlog").content.decode()
    assert "#[StartTime:" in hlog
    assert len([line for line in hlog.splitlines() if line and line[0].isdigit()]) == len(rows)


@pytest.mark.django_db
def test_a_scheduled_task_queues_a_run_and_the_reaper_is_scheduled(
    definition: LoadTestDefinition, settings: Any
) -> None:
    from loadtests.tasks import run_definition

    run_id = run_definition(definition.pk)
    run = LoadTestRun.objects.get(pk=run_id)
    assert (run.trigger, run.status) == ("schedule", "queued")
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "loadtests.tasks.reap_stale_runs" in tasks
