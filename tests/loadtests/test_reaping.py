from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from loadtests import housekeeping, lifecycle, services
from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval
from stats.histogram import Histogram
from tests.cache_redis import PrivateRedis, private_redis_server
from tests.conftest import ROOT, worker_env
from tests.processes import send_task, wait_for

# The promise: a run is interrupted within 15 s of its last heartbeat.
REAP_PROMISE_S = 15


def running_run(definition: LoadTestDefinition, *, silent_for_s: float, node: str = "") -> Any:
    run = services.create_run(definition)
    beat = timezone.now() - timedelta(seconds=silent_for_s)
    LoadTestRun.objects.filter(pk=run.pk).update(
        status="running",
        started_at=beat - timedelta(seconds=5),
        heartbeat_at=beat,
        worker_node=node,
    )
    return run


def record_seconds(run: Any, *latencies_us: list[int]) -> None:
    for second, values in enumerate(latencies_us):
        hist = Histogram()
        for value in values:
            hist.record(value)
        RunInterval.objects.create(
            run=run, index=second, started_at=timezone.now(), requests=len(values), errors=0,
            latency_histogram=hist.encode(), service_histogram=hist.encode(),
        )  # fmt: skip


@pytest.mark.django_db
def test_it_promises_a_reap_within_fifteen_seconds_of_the_last_heartbeat() -> None:
    # A run goes stale HEARTBEAT_STALE_S after its last heartbeat, and some process's
    # housekeeping looks at most one interval later.
    worst_case = lifecycle.HEARTBEAT_STALE_S + housekeeping.HOUSEKEEPING_INTERVAL_S
    assert worst_case < REAP_PROMISE_S
    # Several heartbeats must go missing before a run is taken for dead.
    assert lifecycle.HEARTBEAT_STALE_S >= 5 * lifecycle.HEARTBEAT_S


@pytest.mark.django_db
def test_it_interrupts_a_run_silent_for_longer_than_the_stale_threshold(
    definition: LoadTestDefinition,
) -> None:
    stale = running_run(definition, silent_for_s=lifecycle.HEARTBEAT_STALE_S + 1)
    record_seconds(stale, [1000, 2000], [3000])
    quiet = running_run(definition, silent_for_s=lifecycle.HEARTBEAT_STALE_S - 2)

    assert lifecycle.reap_stale_runs() == [stale.pk]
    stale.refresh_from_db()
    assert stale.status == "interrupted"
    assert stale.requests == 3 and stale.intervals.count() == 2
    assert stale.latency_max_ms == pytest.approx(3.0, rel=0.01)
    assert "stopped reporting" in stale.status_reason
    assert LoadTestRun.objects.get(pk=quiet.pk).status == "running"


@pytest.mark.django_db
def test_it_reaps_from_the_housekeeping_jobs(definition: LoadTestDefinition) -> None:
    stale = running_run(definition, silent_for_s=lifecycle.HEARTBEAT_STALE_S + 1)
    assert housekeeping.run_once()["reap_stale_runs"] == [stale.pk]


@pytest.mark.django_db
def test_it_interrupts_at_once_the_runs_a_restarted_worker_left_running(
    definition: LoadTestDefinition,
) -> None:
    mine = running_run(definition, silent_for_s=0, node="worker@here")
    record_seconds(mine, [1000, 2000, 3000], [4000])
    other_node = running_run(definition, silent_for_s=0, node="worker@there")
    queued = services.create_run(definition)

    assert lifecycle.reap_node_runs("worker@here") == [mine.pk]
    mine.refresh_from_db()
    assert mine.status == "interrupted"
    assert mine.requests == 4 and mine.intervals.count() == 2
    assert mine.finished_at is not None
    assert "worker@here" in mine.status_reason and "restarted" in mine.status_reason
    assert LoadTestRun.objects.get(pk=other_node.pk).status == "running"
    assert LoadTestRun.objects.get(pk=queued.pk).status == "queued"
    assert lifecycle.reap_node_runs("") == []


@pytest.mark.django_db
def test_it_records_the_worker_node_that_claims_a_run(definition: LoadTestDefinition) -> None:
    run = lifecycle.execute(services.create_run(definition).pk, worker_node="worker@here")
    assert run is not None and run.worker_node == "worker@here"


@pytest.mark.django_db(transaction=True)
def test_a_reaped_run_whose_worker_lives_on_stops_writing_and_stays_interrupted(
    definition: LoadTestDefinition,
) -> None:
    definition.duration_s = 30
    definition.save()
    run = services.create_run(definition)
    finished: dict[str, Any] = {}

    def worker() -> None:
        try:
            finished["run"] = lifecycle.execute(run.pk, worker_node="worker@alive")
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 20
    while RunInterval.objects.filter(run=run).count() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    # Taken for dead while it is in fact alive (a long pause, a restart under the same name).
    assert lifecycle.reap_node_runs("worker@alive") == [run.pk]
    reaped = LoadTestRun.objects.get(pk=run.pk)
    thread.join(timeout=20)
    assert not thread.is_alive(), "the worker kept running a run that was reaped"

    run.refresh_from_db()
    assert run.status == "interrupted"
    assert run.status_reason == reaped.status_reason
    assert run.finished_at == reaped.finished_at
    assert run.intervals.count() == reaped.intervals.count() >= 2
    assert run.requests == reaped.requests == sum(run.intervals.values_list("requests", flat=True))
    assert finished["run"].status == "interrupted"


@pytest.mark.django_db(transaction=True)
def test_a_run_with_a_fresh_heartbeat_is_never_reaped(definition: LoadTestDefinition) -> None:
    definition.duration_s = 4
    definition.save()
    run = services.create_run(definition)
    reaped: list[int] = []
    stop = threading.Event()

    def reaper() -> None:
        # A reaper with a hair trigger, racing the live run's heartbeats the whole time.
        try:
            while not stop.is_set():
                reaped.extend(lifecycle.reap_stale_runs(stale_after_s=3))
                time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=reaper)
    thread.start()
    try:
        done = lifecycle.execute(run.pk, worker_node="worker@alive")
    finally:
        stop.set()
        thread.join()
    assert reaped == []
    assert done is not None and done.status == "passed", done.status_reason


# -- a real worker that stops heartbeating ---------------------------------------------------


def broker_url(redis: PrivateRedis) -> str:
    return redis.url.replace("/0", "/1")


def start_worker(redis: PrivateRedis, database: str, node: str, queues: str, log: Path) -> Any:
    env = worker_env(database)
    env.update(REDIS_URL=redis.url, CELERY_BROKER_URL=broker_url(redis))
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "offgridperf", "worker", "-Q", queues,
             "-c", "1", "-l", "INFO", "-n", node, "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_worker(proc: Any) -> None:
    for sig in (signal.SIGCONT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    proc.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with private_redis_server() as redis:
        yield redis


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_frozen_worker_is_reaped_by_another_processs_housekeeping(
    definition: LoadTestDefinition, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    redis = private_redis
    database = connection.settings_dict["NAME"]
    definition.duration_s = 120
    definition.save()
    run = services.create_run(definition)
    frozen = start_worker(redis, database, "frozen@%h", "loadgen", tmp_path / "frozen.log")
    # Consumes nothing we send: it is here for the housekeeping thread of its main process.
    bystander = start_worker(
        redis, database, "bystander@%h", "nothing-to-do", tmp_path / "bystander.log"
    )
    try:
        result = send_task(broker_url(redis), "loadtests.tasks.execute_run", run.pk)
        wait_for(lambda: run.intervals.count() >= 3, 60, "three recorded seconds")
        os.killpg(frozen.pid, signal.SIGSTOP)
        last_beat = LoadTestRun.objects.get(pk=run.pk).heartbeat_at
        waited = wait_for(
            lambda: LoadTestRun.objects.get(pk=run.pk).status != "running",
            3 * REAP_PROMISE_S,
            "the reap",
        )
        reaped = LoadTestRun.objects.get(pk=run.pk)
        silent = (reaped.finished_at - last_beat).total_seconds()
        print(f"interrupted {waited:.1f} s after SIGSTOP, {silent:.1f} s after its last heartbeat")
        assert reaped.status == "interrupted"
        assert reaped.worker_node.startswith("frozen@")
        assert reaped.intervals.count() >= 3
        assert reaped.requests == sum(reaped.intervals.values_list("requests", flat=True))

        # The worker wakes up: it must notice, stop, and leave the reaped run as it is.
        os.killpg(frozen.pid, signal.SIGCONT)
        answer = result.get(timeout=30)
        assert answer["status"] == "interrupted"
        run.refresh_from_db()
        assert (run.status, run.status_reason) == ("interrupted", reaped.status_reason)
        assert run.intervals.count() == reaped.intervals.count()
        assert run.requests == reaped.requests
    finally:
        stop_worker(frozen)
        stop_worker(bystander)
