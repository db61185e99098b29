"""The dashboard's pages and JSON endpoints: content, access rules, bad input, query counts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval, RunStatus, Tag
from stats.histogram import histogram_of

pytestmark = pytest.mark.django_db

# Session and user lookups made by the middleware on every logged-in request.
AUTH_QUERIES = 2


def make_run(definition: LoadTestDefinition | None, **fields: Any) -> LoadTestRun:
    now = timezone.now()
    status = fields.pop("status", RunStatus.PASSED)
    p95 = fields.pop("p95", 20.0)
    latency = histogram_of([5_000, 10_000, 12_000, int(p95 * 1000), 40_000])
    values: dict[str, Any] = {
        "definition": definition,
        "name": definition.name if definition else "ad hoc",
        "config": {"load_model": "closed", "duration_s": 60},
        "status": status,
        "started_at": now - timedelta(seconds=60),
        "finished_at": None if status in (RunStatus.RUNNING, RunStatus.QUEUED) else now,
        "planned_duration_s": 60,
        "requests": 6000,
        "errors": 6,
        "duration_s": 60.0,
        "throughput_rps": 100.0,
        "error_rate_pct": 0.1,
        "latency_p50_ms": p95 / 2,
        "latency_p95_ms": p95,
        "latency_p99_ms": p95 * 1.5,
        "service_p95_ms": p95 * 0.8,
        "latency_histogram": latency.encode(),
        "service_histogram": latency.encode(),
        "passed": status == RunStatus.PASSED
        if status in (RunStatus.PASSED, RunStatus.FAILED)
        else None,
        "valid": True,
        "errors_by_class": {"http_500": {"count": 6, "sample": "500 Internal Server Error"}},
        "threshold_results": [
            {
                "name": "p95_ms",
                "label": "p95 latency (ms)",
                "limit": 50,
                "actual": p95,
                "passed": True,
            }
        ],
    }
    values.update(fields)
    return LoadTestRun.objects.create(**values)


def add_intervals(run: LoadTestRun, seconds: int, spike_at: int | None = None) -> None:
    start = run.started_at or timezone.now()
    RunInterval.objects.bulk_create(
        RunInterval(
            run=run,
            index=i,
            started_at=start + timedelta(seconds=i),
            requests=100,
            errors=1 if i % 10 == 0 else 0,
            throughput_rps=100.0,
            target=10,
            active_users=10,
            latency_p50_ms=10.0,
            latency_p95_ms=20.0,
            latency_p99_ms=900.0 if i == spike_at else 30.0,
            latency_max_ms=40.0,
            service_p50_ms=9.0,
            service_p95_ms=18.0,
            service_p99_ms=25.0,
        )
        for i in range(seconds)
    )


def page_json(response: Any, element_id: str) -> Any:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


# -- overview ----------------------------------------------------------------------------


def test_it_lists_recent_runs_trends_and_running_runs_in_a_fixed_number_of_queries(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    for i in range(30):
        make_run(definition, p95=10.0 + i, status=RunStatus.FAILED if i == 29 else RunStatus.PASSED)
    running = make_run(definition, status=RunStatus.RUNNING)
    # open alerts, definitions, tags, trends, running, count, page, the database's size
    with django_assert_num_queries(AUTH_QUERIES + 8):
        response = admin_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'href="/runs/{running.pk}/"' in body and 'id="running-now"' in body
    assert "page 1 of 2 (31 runs)" in body
    trend = page_json(response, "trend-data")[str(definition.pk)]
    assert len(trend) == 20
    assert trend[-1]["passed"] is False and trend[-1]["p95"] == 39.0

    other = LoadTestDefinition.objects.create(name="other", target_base_url="http://127.0.0.1:1")
    for _ in range(30):
        make_run(other)
    with django_assert_num_queries(AUTH_QUERIES + 8):
        assert admin_client.get("/?page=3").status_code == 200


def test_the_running_endpoint_reports_what_the_page_shows_in_one_query(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        running = make_run(
            definition,
            status=RunStatus.RUNNING,
            started_at=now - timedelta(seconds=15),
            requests=800,
            errors=8,
        )
        add_intervals(running, 15)
        RunInterval.objects.filter(run=running, index=14).update(latency_p95_ms=55.0)
        overdue = make_run(
            definition, status=RunStatus.RUNNING, started_at=now - timedelta(seconds=90)
        )
        queued = make_run(definition, status=RunStatus.QUEUED, started_at=None, requests=0)
        make_run(definition)  # finished: not running
        for _ in range(5):
            add_intervals(make_run(definition, status=RunStatus.RUNNING), 30)
        # running runs with each one's latest p95, the workers on loadgen (a run is queued)
        with django_assert_num_queries(AUTH_QUERIES + 2):
            response = admin_client.get("/runs/running.json")
        page = admin_client.get("/").content.decode()

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    runs = {state["id"]: state for state in response.json()["runs"]}
    assert len(runs) == 8 and queued.pk in runs
    assert runs[running.pk] == {
        "id": running.pk,
        "name": "smoke",
        "status": "running",
        "started_at": running.started_at.isoformat(),
        "started_time": timezone.localtime(running.started_at).strftime("%H:%M:%S"),
        "elapsed_s": 15.0,
        "planned_s": 60,
        "progress_pct": 25.0,
        "requests": 800,
        "errors": 8,
        "error_rate_pct": 1.0,
        "latency_p95_ms": 55.0,
        "url": f"/runs/{running.pk}/",
        "waiting": None,
    }
    assert runs[overdue.pk]["progress_pct"] == 100.0 and runs[overdue.pk]["latency_p95_ms"] is None
    assert runs[queued.pk]["progress_pct"] == 0.0
    assert runs[queued.pk]["elapsed_s"] is None and runs[queued.pk]["started_time"] is None
    assert runs[queued.pk]["error_rate_pct"] is None
    assert runs[queued.pk]["waiting"]["message"].startswith("Waiting for a worker: ")
    row = re.search(rf'<tr data-run="{running.pk}">.*?</tr>', page, re.S)
    assert row, "the page lists the running run"
    for text in ("width: 25.0%", "25% · 15 s of 60 s", ">800<", ">55.0<", ">1.00%<"):
        assert text in row.group(0)
    assert 'id="running-row"' in page and 'data-url="/runs/running.json"' in page


def test_the_running_endpoint_needs_a_login_and_lists_nothing_when_idle(
    client: Any, admin_user: Any, definition: LoadTestDefinition
) -> None:
    make_run(definition)
    response = client.get("/runs/running.json")
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(admin_user)
    assert client.get("/runs/running.json").json() == {"runs": []}
    assert 'id="running-now" data-url="/runs/running.json" hidden' in (
        client.get("/").content.decode()
    )


def test_it_filters_runs_by_definition_status_dates_and_tag(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    other = LoadTestDefinition.objects.create(name="other", target_base_url="http://127.0.0.1:1")
    definition.tags.add(Tag.objects.create(name="nightly"))
    old = make_run(definition, status=RunStatus.FAILED)
    LoadTestRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    recent = make_run(definition)
    elsewhere = make_run(other)

    def listed(query: str) -> set[int]:
        response = admin_client.get("/" + query)
        assert response.status_code == 200
        return {run.pk for run in response.context["runs"]}

    assert listed("") == {old.pk, recent.pk, elsewhere.pk}
    assert listed(f"?definition={other.pk}") == {elsewhere.pk}
    assert listed("?status=failed") == {old.pk}
    assert listed("?tag=nightly") == {old.pk, recent.pk}
    since = (timezone.localdate() - timedelta(days=2)).isoformat()
    assert listed(f"?since={since}") == {recent.pk, elsewhere.pk}
    until = (timezone.localdate() - timedelta(days=5)).isoformat()
    assert listed(f"?until={until}") == {old.pk}


def test_it_reports_bad_filters_clearly_and_applies_the_good_ones(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    failed = make_run(definition, status=RunStatus.FAILED)
    make_run(definition)
    response = admin_client.get("/?since=2024-13-45&status=failed&page=abc&definition=x")
    assert response.status_code == 400
    body = response.content.decode()
    assert "since: Enter a date as YYYY-MM-DD." in body
    assert "definition: Enter a whole number." in body
    assert [run.pk for run in response.context["runs"]] == [failed.pk]
    response = admin_client.get("/?since=2025-02-01&until=2025-01-01")
    assert response.status_code == 400
    assert "until: Must be on or after the &#x27;since&#x27; date." in response.content.decode()


# -- definition page ----------------------------------------------------------------------


def test_the_definition_page_shows_config_history_and_default_baseline(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    passing = make_run(definition, p95=12.0)
    failing = make_run(definition, status=RunStatus.FAILED, p95=80.0)
    # definition, steps, stages, tags, history, baseline, scheduled runs
    with django_assert_num_queries(AUTH_QUERIES + 7):
        response = admin_client.get(f"/definitions/{definition.pk}/")
    body = response.content.decode()
    assert 'id="run-now"' in body and "GET /json" in body
    assert "requests (weighted independent steps)" in body  # the mode
    assert response.context["baseline"].run == passing
    assert response.context["baseline"].chosen is False
    history = page_json(response, "history-data")
    assert history["ids"] == [passing.pk, failing.pk]
    assert history["failed"] == [False, True]
    assert history["p95"] == [12.0, 80.0]
    for _ in range(40):
        make_run(definition)
    with django_assert_num_queries(AUTH_QUERIES + 7):
        admin_client.get(f"/definitions/{definition.pk}/")


def test_a_user_sets_and_resets_the_baseline(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    chosen = make_run(definition, status=RunStatus.FAILED)
    make_run(definition)
    response = admin_client.post(f"/definitions/{definition.pk}/baseline/", {"run": chosen.pk})
    assert response.status_code == 302
    definition.refresh_from_db()
    assert definition.baseline_run == chosen
    page = admin_client.get(f"/definitions/{definition.pk}/")
    assert page.context["baseline"].run == chosen and page.context["baseline"].chosen
    assert "(chosen)" in page.content.decode()

    admin_client.post(f"/definitions/{definition.pk}/baseline/", {"run": ""})
    definition.refresh_from_db()
    assert definition.baseline_run is None


def test_the_baseline_must_be_a_finished_run_of_the_same_test(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    other = LoadTestDefinition.objects.create(name="other", target_base_url="http://127.0.0.1:1")
    foreign = make_run(other)
    running = make_run(definition, status=RunStatus.RUNNING)
    for run_id in (foreign.pk, running.pk, 999_999):
        response = admin_client.post(
            f"/definitions/{definition.pk}/baseline/", {"run": run_id}, follow=True
        )
        assert f"run #{run_id} is not a finished run of this test" in response.content.decode()
    definition.refresh_from_db()
    assert definition.baseline_run is None


def test_actions_need_their_permissions(
    viewer_client: Any, viewer: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.QUEUED)
    page = viewer_client.get(f"/definitions/{definition.pk}/").content.decode()
    assert 'id="run-now"' not in page and 'id="set-baseline"' not in page
    assert 'id="cancel-run"' not in viewer_client.get(f"/runs/{run.pk}/").content.decode()
    assert viewer_client.post(f"/definitions/{definition.pk}/run/").status_code == 403
    assert viewer_client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    response = viewer_client.post(f"/definitions/{definition.pk}/baseline/", {"run": run.pk})
    assert response.status_code == 403
    assert LoadTestRun.objects.count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED

    viewer.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_loadtestrun", "change_loadtestrun", "change_loadtestdefinition"]
        )
    )
    response = viewer_client.post(f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    response = viewer_client.post(f"/definitions/{definition.pk}/run/")
    queued = LoadTestRun.objects.latest("id")
    assert response["Location"] == f"/runs/{queued.pk}/"
    assert queued.status == RunStatus.QUEUED and queued.started_by == viewer


def test_unknown_ids_give_a_clear_404(admin_client: Any) -> None:
    response = admin_client.get("/runs/424242/")
    assert response.status_code == 404
    assert "There is no run #424242" in response.content.decode()
    response = admin_client.get("/definitions/424242/")
    assert response.status_code == 404
    assert "no load-test definition #424242" in response.content.decode()
    response = admin_client.get("/runs/424242/live/")
    assert response.status_code == 404
    assert response.json() == {"error": "There is no run #424242."}


# -- run page -----------------------------------------------------------------------------


def test_a_long_run_page_is_downsampled_with_spikes_in_a_fixed_number_of_queries(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    run = make_run(definition)
    add_intervals(run, 3600, spike_at=1777)
    # run (with its definition), intervals, whether it has a baseline to compare with; the
    # queries panel: deltas, windows, N+1 groups; the profiles panel: the run's captures (none
    # here, so no memory samples)
    with django_assert_num_queries(AUTH_QUERIES + 7):
        response = admin_client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    data = page_json(response, "run-data")
    timeline = data["timeline"]
    assert timeline["downsampled"] is True
    assert len(timeline["x"]) == 600
    assert max(timeline["series"]["p99"]["max"]) == 900.0
    assert max(timeline["series"]["p99"]["mean"]) < 900.0
    assert timeline["series"]["throughput_rps"]["mean"][0] == 100.0
    assert data["last_index"] == 3599
    assert data["latency"]["spectrum"][-1]["x"] == 6.0
    assert sum(bucket["count"] for bucket in data["latency"]["distribution"]) == 5
    body = response.content.decode()
    for text in ("http_500", "500 Internal Server Error", "p95 latency (ms)", "intervals.csv"):
        assert text in body
    assert "chart.umd.min.js" in body and "loadtests/run.js" in body


def test_an_invalid_run_carries_a_clear_warning(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, valid=False, health={"valid": False, "loop_lag_ms_max": 480})
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="invalid-run"' in body and "This run is not valid" in body
    assert "Event-loop lag, max: 480 ms" in body
    assert (
        'id="invalid-run"'
        not in admin_client.get(f"/runs/{make_run(definition).pk}/").content.decode()
    )


def test_the_live_endpoint_sends_only_new_seconds_and_the_summary_at_the_end(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING, requests=500)
    add_intervals(run, 5)
    # run, its new seconds, and (running) the seconds not yet merged into the live summary
    with django_assert_num_queries(AUTH_QUERIES + 3):
        state = admin_client.get(f"/runs/{run.pk}/live/?after=2").json()
    assert state["active"] is True and state["status"] == "running"
    assert state["timeline"]["x"] == [3, 4] and state["last_index"] == 4
    assert state["timeline"]["series"]["throughput_rps"]["mean"][0] == 100.0
    assert state["timeline"]["series"]["p95"]["mean"][0] == 20.0
    assert 0 < state["progress_pct"] <= 100
    assert "summary_html" not in state

    LoadTestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PASSED, finished_at=timezone.now()
    )
    state = admin_client.get(f"/runs/{run.pk}/live/?after=4").json()
    assert state["active"] is False and state["timeline"]["x"] == []
    assert 'id="percentiles"' in state["summary_html"]
    assert state["latency"]["spectrum"]

    response = admin_client.get(f"/runs/{run.pk}/live/?after=soon")
    assert response.status_code == 400
    assert response.json()["error"].startswith("after:")


def test_shards_add_up_to_one_row_per_second(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = make_run(definition, status=RunStatus.RUNNING)
    add_intervals(run, 2)
    RunInterval.objects.create(
        run=run, shard=1, index=1, started_at=timezone.now(), requests=50, latency_p95_ms=70.0
    )
    state = admin_client.get(f"/runs/{run.pk}/live/").json()
    timeline = state["timeline"]
    assert timeline["x"] == [0, 1]
    assert timeline["series"]["throughput_rps"]["mean"] == [100.0, 150.0]
    assert timeline["series"]["p95"]["mean"] == [20.0, 70.0]


# -- compare ------------------------------------------------------------------------------


def test_compare_defaults_to_the_baseline_and_states_a_verdict_and_its_rule(
    admin_client: Any, definition: LoadTestDefinition, django_assert_num_queries: Any
) -> None:
    for p95 in (20.0, 21.0, 19.0, 20.0):
        add_intervals(make_run(definition, p95=p95), 30)
    baseline = LoadTestRun.objects.filter(definition=definition).latest("id")
    slower = make_run(definition, p95=40.0, status=RunStatus.FAILED)
    add_intervals(slower, 30, spike_at=5)
    # the pickers' recent runs, runs, baseline, noise history, per-second series; the
    # profiles panel's captures
    with django_assert_num_queries(AUTH_QUERIES + 6):
        response = admin_client.get(f"/runs/compare/?b={slower.pk}")
    assert response.status_code == 200
    assert response.context["a"] == baseline and response.context["b"] == slower
    assert response.context["verdict"].outcome == "regression"
    body = response.content.decode()
    assert "Regression" in body and "more than 10%" in body and "run-to-run noise" in body
    data = page_json(response, "compare-data")
    assert data["a"]["id"] == baseline.pk and data["b"]["spectrum"]
    assert len(data["p95"]["b"]["x"]) == 30

    response = admin_client.get(f"/runs/compare/?a={slower.pk}&b={baseline.pk}")
    assert response.context["verdict"].outcome == "improvement"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?a=1&b=1", 400, "A run compared with itself shows nothing"),
        ("?a=x&b=2", 400, "run a (baseline): Enter a whole number."),
        ("", 400, "Give a run id in a or b"),
        ("?a=999998&b=999999", 404, "There is no run #999998 or #999999."),
    ],
)
def test_compare_explains_bad_queries(
    admin_client: Any, query: str, status: int, message: str
) -> None:
    response = admin_client.get("/runs/compare/" + query)
    assert response.status_code == status
    assert message in response.content.decode()


def test_compare_without_a_baseline_asks_for_both_runs(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    first = make_run(definition, status=RunStatus.FAILED)
    response = admin_client.get(f"/runs/compare/?b={first.pk}")
    assert response.status_code == 400
    assert f"Run #{first.pk} has no baseline to compare with" in response.content.decode()
