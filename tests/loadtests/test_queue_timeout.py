"""Runs that no worker takes: the run and overview pages (and their live JSON) say that the run
waits for a worker and whether one is alive on `loadgen`; after LOADTEST_QUEUE_TIMEOUT_S the run
ends as `error` (in housekeeping, or wherever it is read), a message delivered later does not
start it, and `loadtest run --wait` says all this on stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from loadtests import housekeeping, lifecycle, reports, services, waiting
from loadtests.models import (
    LoadTestDefinition,
    LoadTestRun,
    RunShard,
    RunStatus,
    RunTrigger,
    ShardStatus,
    WorkerHeartbeat,
)
from loadtests.tasks import execute_run
from tests.conftest import ROOT

# Session and user lookups made by the middleware on every logged-in request.
AUTH_QUERIES = 2
NO_WORKER = "no worker is consuming the loadgen queue"
START_ONE = "start one with `celery -A offgridperf worker -Q loadgen -c 1 -n loadgen@%h`"


def queued_run(definition: LoadTestDefinition, waited_s: float = 0) -> LoadTestRun:
    """A run queued `waited_s` seconds ago (no message: nobody will take it)."""
    run = services.create_run(definition, trigger=RunTrigger.CLI)
    created = timezone.now() - timedelta(seconds=waited_s)
    LoadTestRun.objects.filter(pk=run.pk).update(created_at=created)
    run.refresh_from_db()
    return run


def running_run(definition: LoadTestDefinition, node: str = "") -> LoadTestRun:
    run = services.create_run(definition, trigger=RunTrigger.CLI)
    now = timezone.now()
    LoadTestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=now - timedelta(seconds=300),
        heartbeat_at=now,
        worker_node=node,
        created_at=now - timedelta(seconds=300),
    )
    run.refresh_from_db()
    return run


def heartbeat(node: str, queues: list[str], seen_s_ago: float = 1) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        node=node,
        hostname="worker-host",
        pid=4242,
        queues=queues,
        started_at=now - timedelta(hours=1),
        seen_at=now - timedelta(seconds=seen_s_ago),
    )


@pytest.fixture
def no_live_heartbeats() -> Iterator[None]:
    """Only the heartbeats a test writes count: the clock moves a day ahead, so that a worker
    this session started (for other tests) has a heartbeat a day old."""
    with time_machine.travel(timezone.now() + timedelta(days=1), tick=True):
        yield


# -- expiry -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_ends_a_run_queued_longer_than_the_timeout_as_error(
    definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        old = queued_run(definition)
        running = running_run(definition)
        clock.shift(timedelta(seconds=2))
        young = queued_run(definition)
        clock.shift(timedelta(seconds=119))  # old: 121 s, young: 119 s
        assert lifecycle.expire_queued_runs() == [old.pk]
        assert lifecycle.expire_queued_runs() == []

    old.refresh_from_db()
    assert old.status == RunStatus.ERROR
    assert old.finished_at == start + timedelta(seconds=121) and old.started_at is None
    assert old.status_reason == (
        "No worker took this run within 120 s (LOADTEST_QUEUE_TIMEOUT_S): "
        f"no worker was consuming the loadgen queue — {START_ONE}."
    )
    assert reports.exit_code(old) == 2
    young.refresh_from_db()
    assert young.status == RunStatus.QUEUED and young.finished_at is None
    running.refresh_from_db()
    assert running.status == RunStatus.RUNNING and running.finished_at is None


@pytest.mark.django_db
def test_the_reason_says_whether_a_worker_was_alive_on_the_queue(
    definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    heartbeat("busy@host", ["loadgen"])
    running_run(definition, node="busy@host")
    heartbeat("stale@host", ["loadgen"], seen_s_ago=60)  # dead: not counted
    heartbeat("other@host", ["default"])  # alive, but not on loadgen
    run = queued_run(definition, waited_s=121)
    # Behind a run on the only generator: it waits its turn, however long that takes.
    assert lifecycle.expire_queued_runs() == []
    assert LoadTestRun.objects.get(pk=run.pk).status == RunStatus.QUEUED

    heartbeat("idle@host", ["loadgen"])
    assert lifecycle.expire_queued_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status_reason.endswith(
        ": 2 workers were alive on loadgen (1 busy); an idle worker that did not take the run "
        "may be using another broker (CELERY_BROKER_URL)."
    )


@pytest.mark.django_db
def test_the_wait_counts_from_when_a_generator_was_last_freed(
    definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        run = queued_run(definition, waited_s=200)  # behind a run that ended 10 s ago
        ahead = running_run(definition)
        LoadTestRun.objects.filter(pk=ahead.pk).update(
            status=RunStatus.PASSED, finished_at=start - timedelta(seconds=10)
        )
        assert lifecycle.expire_queued_runs() == []
        clock.shift(timedelta(seconds=111))
        assert lifecycle.expire_queued_runs() == [run.pk]


@pytest.mark.django_db
@override_settings(LOADTEST_QUEUE_TIMEOUT_S=30)
def test_the_timeout_is_the_setting(definition: LoadTestDefinition) -> None:
    expired, kept = queued_run(definition, waited_s=31), queued_run(definition, waited_s=29)
    assert lifecycle.expire_queued_runs() == [expired.pk]
    expired.refresh_from_db()
    assert expired.status_reason.startswith("No worker took this run within 30 s")
    assert LoadTestRun.objects.get(pk=kept.pk).status == RunStatus.QUEUED


def settings_value(**env: str) -> subprocess.CompletedProcess[str]:
    code = "from django.conf import settings; print(settings.LOADTEST_QUEUE_TIMEOUT_S)"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "offgridperf.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_setting_reads_its_environment_variable() -> None:
    assert settings_value(LOADTEST_QUEUE_TIMEOUT_S="45").stdout.strip() == "45"
    assert settings_value(LOADTEST_QUEUE_TIMEOUT_S="").stdout.strip() == "120"
    bad = settings_value(LOADTEST_QUEUE_TIMEOUT_S="2m")
    assert bad.returncode != 0
    assert "LOADTEST_QUEUE_TIMEOUT_S='2m' is not a whole number" in bad.stderr


@pytest.mark.django_db(transaction=True)  # run_once closes the connection after each job
def test_housekeeping_expires_queued_runs(definition: LoadTestDefinition) -> None:
    run = queued_run(definition, waited_s=500)
    assert housekeeping.run_once()["expire_queued_runs"] == [run.pk]
    assert LoadTestRun.objects.get(pk=run.pk).status == RunStatus.ERROR


@pytest.mark.django_db
def test_a_message_delivered_after_expiry_does_not_start_the_run(
    definition: LoadTestDefinition,
) -> None:
    run = queued_run(definition, waited_s=121)
    lifecycle.expire_queued_runs()
    assert execute_run(run.pk) is None  # the task body, as a late delivery runs it
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR and run.started_at is None
    assert run.requests == 0 and not run.intervals.exists()
    assert run.status_reason.startswith("No worker took this run within 120 s")


# -- pages --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_run_page_says_it_waits_and_that_no_worker_is_alive(
    admin_client: Any,
    definition: LoadTestDefinition,
    django_assert_num_queries: Any,
    no_live_heartbeats: None,
) -> None:
    heartbeat("gone@host", ["default", "loadgen"], seen_s_ago=60)
    with time_machine.travel(timezone.now(), tick=False):
        run = queued_run(definition, waited_s=20)
        # run (with its definition), the workers on loadgen, intervals, whether a baseline
        # exists (the compare link is shown once the run ends)
        with django_assert_num_queries(AUTH_QUERIES + 4):
            body = admin_client.get(f"/runs/{run.pk}/").content.decode()
        with django_assert_num_queries(AUTH_QUERIES + 3):
            state = admin_client.get(f"/runs/{run.pk}/live/").json()
        gives_up = timezone.localtime(run.created_at + timedelta(seconds=120))

    assert 'id="run-waiting"' in body
    assert f"Waiting for a worker: {NO_WORKER} — {START_ONE}." in body.replace("&#x27;", "'")
    assert f"Queued 20 s ago; gives up in 100 s (at {gives_up:%H:%M:%S})." in body
    waiting = state["waiting"]
    assert state["status"] == "queued" and state["active"] is True
    assert waiting["message"].startswith(f"Waiting for a worker: {NO_WORKER} — {START_ONE}.")
    assert waiting["queue"] == "loadgen"
    assert (waiting["workers_alive"], waiting["workers_busy"]) == (0, 0)
    assert (waiting["waited_s"], waiting["timeout_s"], waiting["gives_up_in_s"]) == (20, 120, 100)
    assert waiting["gives_up_at"] == (run.created_at + timedelta(seconds=120)).isoformat()


@pytest.mark.django_db
def test_the_run_page_says_a_worker_is_alive_and_busy(
    admin_client: Any, definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    heartbeat("w1@host", ["loadgen"])
    busy = running_run(definition, node="w1@host")
    run = queued_run(definition, waited_s=5)
    body = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert re.search(
        rf"Waiting for a load generator: busy with run #{busy.pk}\. Queued [56] s ago", body
    )
    waiting = admin_client.get(f"/runs/{run.pk}/live/").json()["waiting"]
    assert (waiting["workers_alive"], waiting["workers_busy"]) == (1, 1)
    assert waiting["busy_with"] == [busy.pk] and waiting["gives_up_at"] is None

    # A running run's page does not wait for anyone.
    running = LoadTestRun.objects.get(status=RunStatus.RUNNING)
    assert (
        'id="run-waiting" class="waiting warning" hidden'
        in admin_client.get(f"/runs/{running.pk}/").content.decode()
    )
    assert admin_client.get(f"/runs/{running.pk}/live/").json()["waiting"] is None


@pytest.mark.django_db
def test_a_run_read_as_queued_just_before_a_generator_took_it_waits_for_nobody(
    definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    # The status was read before the claim, the workers after it: the generator is busy
    # with this very run, which is starting, not waiting behind itself.
    heartbeat("w1@host", ["loadgen"])
    run = queued_run(definition, waited_s=1)
    stale = LoadTestRun.objects.get(pk=run.pk)
    LoadTestRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker_node="w1@host")
    workers = waiting.queue_workers()
    assert workers.busy_with == (run.pk,)

    assert waiting.waiting_state(stale, workers) is None


@pytest.mark.django_db
def test_a_generator_running_a_shard_is_busy_with_its_run(
    admin_client: Any, definition: LoadTestDefinition, no_live_heartbeats: None
) -> None:
    heartbeat("g1@host", ["loadgen"])
    heartbeat("g2@host", ["loadgen"])
    sharded = running_run(definition, node="g1@host")  # the run's node: its first shard's
    for index, node in enumerate(("g1@host", "g2@host")):
        RunShard.objects.create(
            run=sharded,
            index=index,
            status=ShardStatus.RUNNING,
            worker_node=node,
            worker_pid=100 + index,
            heartbeat_at=timezone.now(),
        )
    run = queued_run(definition, waited_s=5)
    waiting = admin_client.get(f"/runs/{run.pk}/live/").json()["waiting"]
    assert (waiting["workers_alive"], waiting["workers_busy"]) == (2, 2)
    # Queued 5 s before the request: 5 s, or 6 s when the request itself took a while.
    assert re.match(
        rf"Waiting for a load generator: busy with run #{sharded.pk}\. Queued [56] s ago",
        waiting["message"],
    ), waiting["message"]


@pytest.mark.django_db
def test_reading_a_run_past_the_timeout_ends_it_even_without_beat_or_a_worker(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    on_page, on_live, on_overview = (queued_run(definition, waited_s=121) for _ in range(3))
    body = admin_client.get(f"/runs/{on_page.pk}/").content.decode()
    assert '<span class="badge error" id="run-status">error</span>' in body
    assert "No worker took this run within 120 s (LOADTEST_QUEUE_TIMEOUT_S)" in body
    state = admin_client.get(f"/runs/{on_live.pk}/live/").json()
    assert state["status"] == "error" and state["active"] is False and state["waiting"] is None
    assert state["status_reason"].startswith("No worker took this run within 120 s")
    assert "summary_html" in state
    assert admin_client.get("/runs/running.json").json() == {"runs": []}
    statuses = set(LoadTestRun.objects.values_list("status", flat=True))
    assert statuses == {RunStatus.ERROR}
    assert LoadTestRun.objects.get(pk=on_overview.pk).finished_at is not None


@pytest.mark.django_db
def test_the_overview_and_its_live_endpoint_show_the_waiting_run(
    admin_client: Any,
    definition: LoadTestDefinition,
    django_assert_num_queries: Any,
    no_live_heartbeats: None,
) -> None:
    with time_machine.travel(timezone.now(), tick=False):
        run = queued_run(definition, waited_s=30)
        # open alerts, definitions, tags, trends, running, the workers on loadgen, count, page,
        # the database's size
        with django_assert_num_queries(AUTH_QUERIES + 9):
            page = admin_client.get("/").content.decode()
        # running runs with each one's latest p95, the workers on loadgen
        with django_assert_num_queries(AUTH_QUERIES + 2):
            runs = admin_client.get("/runs/running.json").json()["runs"]
    row = page.split(f'<tr data-run="{run.pk}">', 1)[1].split("</tr>", 1)[0]
    assert f"Waiting for a worker: {NO_WORKER}" in row.replace("&#x27;", "'")
    assert "Queued 30 s ago; gives up in 90 s" in row
    assert 'data-field="waiting" class="waiting small"' in row
    [state] = runs
    assert state["id"] == run.pk and state["waiting"]["workers_alive"] == 0
    assert state["waiting"]["message"].startswith(f"Waiting for a worker: {NO_WORKER} — ")

    heartbeat("w1@host", ["default", "loadgen"])
    heartbeat("w2@host", ["loadgen"])
    page = admin_client.get("/").content.decode()
    assert "Waiting for a worker: 2 workers alive on loadgen (idle)." in page
    [state] = admin_client.get("/runs/running.json").json()["runs"]
    assert (state["waiting"]["workers_alive"], state["waiting"]["workers_busy"]) == (2, 0)


# -- the CLI ------------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("loadtest", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def no_worker_on_loadgen() -> Iterator[None]:
    """Nobody consumes `loadgen` on the test's broker and no worker has been seen lately.

    A worker that this test session started (for other tests) stops consuming `loadgen` for the
    test, through Celery's remote control, and the clock moves a day ahead so that every real
    heartbeat is a day old. The message left in the queue is purged afterwards."""
    from offgridperf.celery import app

    app.control.cancel_consumer("loadgen", reply=True, timeout=1.0)
    try:
        with time_machine.travel(timezone.now() + timedelta(days=1), tick=True):
            yield
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge("loadgen")
        app.control.add_consumer("loadgen", reply=True, timeout=1.0)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@override_settings(LOADTEST_QUEUE_TIMEOUT_S=3)
def test_the_cli_says_it_waits_for_a_worker_and_exits_2_when_none_comes(
    definition: LoadTestDefinition, no_worker_on_loadgen: None
) -> None:
    code, out, err = run_cli("run", "smoke", "--wait")
    run = LoadTestRun.objects.get(definition=definition)
    assert code == 2
    assert run.status == RunStatus.ERROR and run.celery_task_id  # the message was sent
    reason = (
        "No worker took this run within 3 s (LOADTEST_QUEUE_TIMEOUT_S): "
        f"no worker was consuming the loadgen queue — {START_ONE}."
    )
    assert run.status_reason == reason
    lines = err.splitlines()
    waiting = [line for line in lines if "Waiting for a worker" in line]
    assert len(waiting) == 1, err  # said once, not every second
    assert waiting[0].startswith(f"run #{run.pk}: Waiting for a worker: {NO_WORKER} — {START_ONE}.")
    assert "gives up in 3 s" in waiting[0]
    assert lines[-1] == f"run #{run.pk} ended as error: {reason}"
    assert reason in out


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_cli_says_when_a_worker_takes_the_run(
    celery_worker_process: Any, definition: LoadTestDefinition
) -> None:
    code, out, err = run_cli("run", "smoke", "--wait")
    run = LoadTestRun.objects.get(definition=definition)
    assert code == 0, err + out
    assert run.status == RunStatus.PASSED
    taken = [line for line in err.splitlines() if "a worker took it" in line]
    assert len(taken) == 1, err
    assert taken[0].startswith(f"run #{run.pk}: a worker took it after ")
    assert "ended as error" not in err
