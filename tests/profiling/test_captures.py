"""Captures of real processes with the real tools (py-spy, psutil)."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from profiling import services
from profiling.models import CaptureStatus, ProfileCapture, ProfileTarget
from tests.profiling.programs import NAMED_THREAD

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

Program = Callable[[str], subprocess.Popen[str]]


def take(kind: str, pid: int, **options: object) -> ProfileCapture:
    """A capture of `pid` by someone who may capture any process (these test the tools; the
    registered-targets rule has its own tests in tests/security)."""
    capture = services.create_capture(kind, pid=pid, any_process=True, **options)
    services.execute(capture.pk)
    capture.refresh_from_db()
    return capture


def test_it_finds_the_function_that_burns_the_cpu(program: Program) -> None:
    spinner = program("spin")
    capture = take("cpu", spinner.pid, duration_s=3, rate_hz=100)
    assert capture.status == CaptureStatus.DONE, capture.error
    top = capture.function_stats.first()
    assert top.function == "burn_cpu_here"
    assert top.self_pct >= 50.0
    assert top.file.endswith("programs.py")
    assert capture.summary["samples"] > 0
    assert capture.tool == "py-spy" and capture.tool_version
    assert capture.summary["nonblocking"] is True  # the default: it barely touches the target
    assert services.artefact_path(capture, "speedscope") is not None
    collapsed = services.artefact_path(capture, "collapsed").read_text()
    assert "burn_cpu_here" in collapsed


def test_it_can_pause_the_target_for_each_sample(program: Program, settings: object) -> None:
    settings.PROFILING_PYSPY_NONBLOCKING = False
    spinner = program("spin")
    capture = take("cpu", spinner.pid, duration_s=2, rate_hz=100)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert capture.summary["nonblocking"] is False
    assert capture.function_stats.first().function == "burn_cpu_here"


def test_it_lists_every_thread_by_name(program: Program) -> None:
    process = program("threads")
    capture = take("threads", process.pid)
    assert capture.status == CaptureStatus.DONE, capture.error
    names = [thread["name"] for thread in capture.summary["threads"]]
    assert NAMED_THREAD in names
    assert "MainThread" in names


def test_it_records_a_trace_timeline(program: Program) -> None:
    spinner = program("spin")
    capture = take("trace", spinner.pid, duration_s=1, rate_hz=50)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert capture.summary["events"] > 0
    path = services.artefact_path(capture, "chrometrace")
    assert "burn_cpu_here" in path.read_text()


def test_it_measures_a_process_leaking_a_megabyte_a_second_but_six_seconds_judge_nothing(
    program: Program,
) -> None:
    leaker = program("leak")
    capture = take("memory", leaker.pid, duration_s=6, interval_ms=100)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert capture.summary["slope_mb_per_min"] > 30
    # A leak and a warm-up look alike over six seconds (trend.MIN_DURATION_S).
    assert capture.verdict == "inconclusive"
    assert "too short to tell a leak from warm-up" in capture.summary["reason"]
    assert capture.memory_samples.count() == capture.summary["samples"] >= 40


def test_it_measures_a_steady_process_flat_but_six_seconds_judge_nothing(
    program: Program,
) -> None:
    steady = program("steady")
    capture = take("memory", steady.pid, duration_s=6, interval_ms=100)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert abs(capture.summary["slope_mb_per_min"]) < 10, capture.summary
    assert capture.verdict == "inconclusive", capture.summary
    assert "too short to tell a leak from warm-up" in capture.summary["reason"]


def test_a_missing_process_ends_the_capture_in_error(program: Program) -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    capture = take("cpu", process.pid, duration_s=1)
    assert capture.status == CaptureStatus.ERROR
    assert f"process {process.pid} does not exist" in capture.error


def test_a_refused_ptrace_ends_the_capture_in_error(
    program: Program, settings: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # py-spy run as user nobody without capabilities: the kernel refuses it our process.
    wrapper = tmp_path / "py-spy-as-nobody"
    real = services.pyspy.executable("")
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version) exec {real} "$@";; esac\n'
        f'exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    settings.PROFILING_PYSPY = str(wrapper)
    process = program("threads")
    capture = take("threads", process.pid)
    assert capture.status == CaptureStatus.ERROR
    assert "ptrace was refused" in capture.error


def test_a_capture_during_a_run_is_linked_to_it(program: Program) -> None:
    definition = LoadTestDefinition.objects.create(
        name="during", target_base_url="http://127.0.0.1:8001", duration_s=5, users=1
    )
    run = LoadTestRun.objects.create(
        definition=definition, name=definition.name, config={}, status=RunStatus.RUNNING
    )
    process = program("threads")
    capture = take("threads", process.pid)
    assert capture.run == run


def test_a_target_finds_its_process_by_command_line(program: Program) -> None:
    process = program("threads")
    target = ProfileTarget.objects.create(
        name="t", cmdline_match="tests.profiling.programs threads"
    )
    capture = services.create_capture("threads", target=target)
    services.execute(capture.pk)
    capture.refresh_from_db()
    assert capture.pid == process.pid
    assert capture.status == CaptureStatus.DONE, capture.error


def test_the_cli_prints_top_functions_as_json(
    program: Program, capsys: pytest.CaptureFixture[str]
) -> None:
    spinner = program("spin")
    call_command(
        "profile", "cpu", "--any-process", "--pid", str(spinner.pid), "--duration", "2", "--json"
    )
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] > 0
    first = result["top_functions"][0]
    assert set(first) == {"function", "file", "line", "self_pct", "total_pct"}
    assert first["function"] == "burn_cpu_here"


def test_the_cli_prints_the_memory_verdict_and_threads_as_json(
    program: Program, capsys: pytest.CaptureFixture[str]
) -> None:
    process = program("threads")
    call_command(
        "profile", "memory", "--any-process", "--pid", str(process.pid), "--duration", "1", "--json"
    )
    memory = json.loads(capsys.readouterr().out)
    assert {"samples", "slope_mb_per_min", "r2", "verdict", "reason"} <= set(memory)
    call_command("profile", "threads", "--any-process", "--pid", str(process.pid), "--json")
    threads = json.loads(capsys.readouterr().out)["threads"]
    assert {"name", "id", "stack"} <= set(threads[0])


def test_the_cli_fails_with_exit_2_and_one_line() -> None:
    with pytest.raises(CommandError) as error:
        call_command("profile", "cpu", "--any-process", "--pid", "999999", "--duration", "1")
    assert error.value.returncode == 2
    assert "does not exist" in str(error.value)
    with pytest.raises(CommandError, match="duration: must be more than 0"):
        call_command("profile", "cpu", "--any-process", "--pid", "1", "--duration", "0")


def test_a_memory_capture_without_redis_records_what_its_gc_and_tracemalloc_need(
    program: Program, settings: pytest.FixtureRequest
) -> None:
    settings.REDIS_URL, settings.PROFILING_AGENT = "", True  # the default under `make run`
    steady = program("steady")
    capture = take("memory", steady.pid, duration_s=1, interval_ms=100)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert "tracemalloc" not in capture.summary and "gc" not in capture.summary
    assert capture.summary["agent_missing"] == (
        "GC and tracemalloc figures need the in-process agent, which publishes through Redis: "
        "set REDIS_URL, then restart the target"
    )
