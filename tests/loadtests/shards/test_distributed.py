"""Sharded runs on real generator processes: two Celery workers with different node names."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests import lifecycle, services, tasks
from loadtests.engine.results import ms
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep, RunShard, ShardStatus
from stats.histogram import Histogram
from tests.loadtests.shards.conftest import Generators, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def open_definition(target_url: str, *, rate: float, duration_s: int) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name=f"sharded {rate} {duration_s}",
        target_base_url=target_url,
        load_model="open",
        rate_rps=rate,
        duration_s=duration_s,
        timeout_s=2,
        shards=2,
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def ended(run: LoadTestRun) -> bool:
    run.refresh_from_db()
    return not run.is_active


def both_running(run: LoadTestRun) -> bool:
    return RunShard.objects.filter(run=run, status="running").count() == 2 and {0, 1} <= set(
        run.intervals.values_list("shard", flat=True)
    )


def test_it_runs_two_shards_on_two_workers_as_one_run(
    generators: Generators, target_url: str
) -> None:
    generators.start("gen-a", "gen-b")
    run = tasks.queue_run(open_definition(target_url, rate=200, duration_s=6))
    wait_until(lambda: ended(run), 90, "the sharded run's end")

    assert run.status == "passed", run.status_reason
    shard_rows = list(run.shard_rows.all())
    assert [s.status for s in shard_rows] == ["done", "done"]
    nodes = {s.worker_node.split("@")[0] for s in shard_rows}
    assert nodes == {generators.node_prefix("gen-a")[:-1], generators.node_prefix("gen-b")[:-1]}
    assert all(s.clock_offset_ms is not None for s in shard_rows) and run.start_at
    intervals = list(run.intervals.all())
    assert {i.shard for i in intervals} == {0, 1}
    # The total rate: both shards together, within 2% of the planned 200 req/s.
    assert run.throughput_rps == pytest.approx(200, rel=0.02)
    assert run.requests == sum(i.requests for i in intervals) == sum(s.requests for s in shard_rows)
    # The merged p99 is the p99 of every value recorded by either shard.
    merged = Histogram()
    for interval in intervals:
        merged.merge(Histogram.decode(interval.latency_histogram))
    assert merged.total_count == run.requests
    assert run.latency_p99_ms == ms(merged.value_at_percentile(99))
    assert all(item["passed"] for item in run.threshold_results)


def test_it_interrupts_the_run_when_a_worker_is_lost_keeping_the_other_shards_seconds(
    generators: Generators, target_url: str
) -> None:
    generators.start("lost-a", "lost-b")
    run = tasks.queue_run(open_definition(target_url, rate=100, duration_s=40))
    wait_until(lambda: both_running(run), 60, "both shards running")
    lost = RunShard.objects.get(run=run, worker_node__startswith=generators.node_prefix("lost-b"))
    generators.kill("lost-b")
    wait_until(lambda: ended(run), 40, "the run's end after losing a worker")

    assert run.status == "interrupted", run.status_reason
    assert f"Shard {lost.index} on lost-b" in run.status_reason
    kept = run.intervals.filter(shard=1 - lost.index)
    assert kept.count() >= 2
    assert run.requests == sum(i.requests for i in run.intervals.all()) > 0
    lost.refresh_from_db()
    assert lost.status == "interrupted"


def test_it_stops_every_shard_on_cancel(generators: Generators, target_url: str) -> None:
    generators.start("cancel-a", "cancel-b")
    run = tasks.queue_run(open_definition(target_url, rate=50, duration_s=60))
    wait_until(lambda: both_running(run), 60, "both shards running")
    assert lifecycle.request_cancel(run)
    wait_until(lambda: ended(run), 20, "the cancelled run's end")

    assert run.status == "cancelled", run.status_reason
    assert [s.status for s in run.shard_rows.all()] == ["done", "done"]
    assert max(run.intervals.values_list("index", flat=True)) < 30


def test_it_ignores_a_shard_delivered_after_its_run_ended(
    generators: Generators, definition: Any
) -> None:
    definition.shards = 2
    definition.save()
    run = services.create_run(definition)
    lifecycle.request_cancel(run)
    assert lifecycle.execute_shard(run.pk, 0, worker_node="late@host") is None
    assert run.shard_rows.get(index=0).worker_pid is None


def test_it_fails_the_run_naming_the_shard_that_was_not_ready_in_time(
    generators: Generators, target_url: str
) -> None:
    # One generator for two shards: shard 1 waits in the queue behind shard 0.
    generators.start("alone", env={"LOADTEST_SHARD_READY_TIMEOUT_S": "3"})
    run = tasks.queue_run(open_definition(target_url, rate=20, duration_s=5))
    wait_until(lambda: ended(run), 40, "the run's end")

    assert run.status == "error"
    assert run.status_reason.startswith("Shard 1 was not ready within"), run.status_reason
    assert not run.intervals.exists()
    # Shard 1's message, delivered once the worker is free, finds the run ended: nothing runs.
    late = RunShard.objects.get(run=run, index=1)
    assert late.status == ShardStatus.ERROR and late.worker_pid is None
