"""Profiles tied to load-test runs: memory throughout, CPU over the steady state."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from profiling import runs, tasks
from profiling.models import CaptureKind, CaptureStatus, ProfileTarget


def make_run(
    definition: LoadTestDefinition | None, planned_s: int, **config: object
) -> LoadTestRun:
    return LoadTestRun.objects.create(
        definition=definition,
        name="profiled",
        config={"duration_s": planned_s, **config},
        status=RunStatus.RUNNING,
        planned_duration_s=planned_s,
    )


@pytest.mark.django_db
def test_the_steady_window_skips_the_ramp_and_the_last_tenth() -> None:
    plain = LoadTestRun(config={"duration_s": 100}, planned_duration_s=100)
    assert runs.steady_window(plain) == runs.Window(start_s=10.0, duration_s=80.0)
    staged = LoadTestRun(
        config={"stages": [{"duration_s": 30, "target": 10}, {"duration_s": 70, "target": 10}]},
        planned_duration_s=100,
    )
    assert runs.steady_window(staged) == runs.Window(start_s=30.0, duration_s=60.0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_run_records_its_targets_memory_throughout_and_cpu_in_its_steady_state(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    spinner = program("spin")
    definition = LoadTestDefinition.objects.create(
        name="profiled", target_base_url="http://127.0.0.1:8001", duration_s=4, users=1
    )
    target = ProfileTarget.objects.create(name="spinner", pid=spinner.pid)
    target.load_tests.add(definition)
    run = make_run(definition, planned_s=4)
    assert runs.targets_of(run) == [target]

    def finish_run() -> None:
        time.sleep(5)
        LoadTestRun.objects.filter(pk=run.pk).update(status=RunStatus.PASSED)
        connection.close()  # this thread's own: the test database is dropped at teardown

    finisher = threading.Thread(target=finish_run)
    finisher.start()
    memory_id, cpu_id = tasks.profile_run.apply(args=[run.pk, target.pk]).get()
    finisher.join()
    captures = {c.kind: c for c in run.profile_captures.all()}
    memory, cpu = captures[CaptureKind.MEMORY], captures[CaptureKind.CPU]
    assert (memory.pk, cpu.pk) == (memory_id, cpu_id)
    assert memory.status == CaptureStatus.DONE, memory.error
    assert cpu.status == CaptureStatus.DONE, cpu.error
    # Sampled until the run ended, not for the planned duration plus the grace period.
    assert 30 <= memory.memory_samples.count() <= 80
    assert memory.verdict in {"leak", "stable", "inconclusive"}
    assert cpu.function_stats.first().function == "burn_cpu_here"
    assert cpu.duration_s == pytest.approx(3.2)


@pytest.mark.django_db
def test_a_definition_without_profile_targets_queues_nothing() -> None:
    definition = LoadTestDefinition.objects.create(
        name="plain", target_base_url="http://127.0.0.1:8001", duration_s=4, users=1
    )
    run = make_run(definition, planned_s=4)
    assert runs.targets_of(run) == []
    tasks.on_run_started(run_id=run.pk)
    assert not run.profile_captures.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_target_with_allocations_during_runs_has_its_heap_captured_after_its_cpu(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    leaker = program("leak")
    definition = LoadTestDefinition.objects.create(
        name="allocating", target_base_url="http://127.0.0.1:8001", duration_s=8, users=1
    )
    target = ProfileTarget.objects.create(
        name="leaker", pid=leaker.pid, allocations_during_runs=True
    )
    target.load_tests.add(definition)
    run = make_run(definition, planned_s=8)

    def finish_run() -> None:
        time.sleep(9)
        LoadTestRun.objects.filter(pk=run.pk).update(status=RunStatus.PASSED)
        connection.close()  # this thread's own: the test database is dropped at teardown

    finisher = threading.Thread(target=finish_run)
    finisher.start()
    ids = tasks.profile_run.apply(args=[run.pk, target.pk]).get()
    finisher.join()
    captures = {c.kind: c for c in run.profile_captures.all()}
    assert sorted(ids) == sorted(c.pk for c in captures.values())
    cpu, heap = captures[CaptureKind.CPU], captures[CaptureKind.ALLOCATIONS]
    assert heap.status == CaptureStatus.DONE, heap.error
    # The steady state (0.8 s to 7.2 s) in halves: CPU over the first, the heap over the second.
    assert cpu.duration_s == heap.duration_s == pytest.approx(3.2)
    assert heap.started_at >= cpu.finished_at
    assert heap.summary["top_by_bytes"][0]["function"] == "leak"
