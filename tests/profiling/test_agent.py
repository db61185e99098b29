"""The in-process agent, run in real child processes and reached through the real Redis."""

from __future__ import annotations

import gc
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from offgridperf_agent import process as agent

from profiling import agentclient, processagent, services
from profiling.models import CaptureStatus

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

Program = Callable[..., subprocess.Popen[str]]


def published(pid: int, check: Callable[[dict[str, Any]], bool] = lambda f: True) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        figures = agentclient.figures(pid)
        if figures is not None and check(figures):
            return figures
        time.sleep(0.1)
    raise AssertionError(f"no agent figures from {pid} matched within 10 s: {figures}")


def test_the_agent_counts_the_collections_a_process_forces(program: Program) -> None:
    process = program("collect", settings.REDIS_URL)
    before = published(process.pid)["gc"]["collections"][2]
    for _ in range(3):
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "collected"
    figures = published(process.pid, lambda f: f["gc"]["collections"][2] >= before + 3)
    assert figures["gc"]["collections"][2] == before + 3
    assert figures["role"] == "test-collector"
    assert any(p["pid"] == process.pid for p in agentclient.processes())


def test_a_memory_capture_names_the_leaking_line_through_the_agent(program: Program) -> None:
    leaker = program("leak-agent", settings.REDIS_URL)
    published(leaker.pid)
    capture = services.create_capture(
        "memory", pid=leaker.pid, duration_s=3, interval_ms=100, any_process=True
    )
    services.execute(capture.pk)
    capture.refresh_from_db()
    assert capture.status == CaptureStatus.DONE, capture.error
    assert "tracemalloc" in capture.tool
    top = capture.summary["tracemalloc"]["by_line"][0]
    assert top["where"].endswith("tests/profiling/programs.py:32")
    assert top["size_diff"] > 1_000_000
    assert capture.summary["tracemalloc"]["by_traceback"]
    assert len(capture.summary["gc"]["collections"]) == 3


def test_the_agent_off_installs_nothing(settings: Any) -> None:
    settings.PROFILING_AGENT = False
    callbacks = list(gc.callbacks)
    processagent.install()
    assert gc.callbacks == callbacks
    assert agent.current() is None
    assert not [t for t in threading.enumerate() if t.name == "profiling-agent"]


def test_gc_stats_count_pauses_per_generation() -> None:
    stats = agent.GcStats()
    gc.callbacks.append(stats.callback)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(stats.callback)
    assert stats.collections[0] >= 1 and stats.collections[2] == 1
    assert stats.as_dict()["pause_ms"][2] > 0
