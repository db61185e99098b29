"""Rows for the profiler's pages, built with plain objects.create, and their artefact files
written under settings.PROFILING_ARTEFACT_DIR (tests/profiling/conftest.py points it at
tmp_path): a target, a finished run, and one finished capture of every kind."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from loadtests.models import LoadTestRun, RunStatus
from profiling import speedscope, trend
from profiling.models import (
    CaptureKind,
    CaptureStatus,
    FunctionStat,
    MemorySample,
    ProfileCapture,
    ProfileTarget,
)

# main -> handle -> work (hot) / parse; 10 samples: work on top in 6, parse in 3, handle in 1.
FRAMES = [
    {"name": "main", "file": "app.py", "line": 1},
    {"name": "handle", "file": "app.py", "line": 10},
    {"name": "work_hot", "file": "app.py", "line": 20},
    {"name": "parse", "file": "io.py", "line": 5},
]
SAMPLES = [[0, 1, 2]] * 6 + [[0, 1, 3]] * 3 + [[0, 1]]


def speedscope_doc(samples: list[list[int]] = SAMPLES) -> dict[str, Any]:
    return {
        "shared": {"frames": FRAMES},
        "profiles": [
            {"type": "sampled", "name": "MainThread", "samples": samples, "weights": [1] * 10}
        ],
    }


def write_artefact(capture: ProfileCapture, name: str, filename: str, content: str) -> Path:
    base = Path(settings.PROFILING_ARTEFACT_DIR)
    path = base / f"capture-{capture.pk}" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    capture.artefacts[name] = str(path.relative_to(base))
    capture.save(update_fields=["artefacts"])
    return path


def done(kind: str, **fields: Any) -> ProfileCapture:
    now = timezone.now()
    return ProfileCapture.objects.create(
        kind=kind,
        status=CaptureStatus.DONE,
        started_at=now - timedelta(seconds=fields.get("duration_s", 10)),
        finished_at=now,
        tool="py-spy",
        tool_version="0.4.0",
        **{"pid": 4242, **fields},
    )


def cpu_capture(samples: list[list[int]] = SAMPLES, **fields: Any) -> ProfileCapture:
    doc = speedscope_doc(samples)
    capture = done(CaptureKind.CPU, summary={"samples": len(samples), "threads": 1}, **fields)
    write_artefact(capture, "speedscope", "profile.speedscope.json", json.dumps(doc))
    write_artefact(capture, "collapsed", "profile.collapsed.txt", speedscope.collapsed(doc))
    FunctionStat.objects.bulk_create(
        FunctionStat(capture=capture, **share.__dict__) for share in speedscope.top_functions(doc)
    )
    return capture


def memory_capture(**fields: Any) -> ProfileCapture:
    """60 samples over 60 s growing 2 MB/s: a leak."""
    times = [float(i) for i in range(60)]
    rss = [100e6 + 2e6 * t for t in times]
    fitted = trend.fit(times, rss, threshold_mb_per_min=1.0)
    summary = {
        "samples": len(times),
        **fitted.as_dict(),
        # As the agent stores them (services._agent_growth): growth by line and by traceback,
        # GC figures over the window as columns by generation.
        "tracemalloc": {
            "by_line": [
                {"where": "leaky.py:12", "traceback": ["leaky.py:12"], "size_diff": 5_000_000,
                 "size": 5_000_000, "count_diff": 1200},
            ],
            "by_traceback": [
                {"where": "leaky.py:12", "traceback": ["main.py:3", "leaky.py:12"],
                 "size_diff": 5_000_000, "size": 5_000_000, "count_diff": 1200},
            ],
        },
        "gc": {"collections": [31, 2, 1], "collected": [900, 40, 7], "pause_ms": [1.25, 0.5, 3.0]},
    }  # fmt: skip
    capture = done(
        CaptureKind.MEMORY,
        summary=summary,
        verdict=fitted.verdict,
        duration_s=60,
        interval_ms=1000,
        **fields,
    )
    start = timezone.now()
    MemorySample.objects.bulk_create(
        MemorySample(
            capture=capture,
            at=start + timedelta(seconds=t),
            elapsed_s=t,
            rss_bytes=int(value),
            uss_bytes=int(value * 0.8),
            vms_bytes=int(value * 3),
            cpu_pct=5.0,
            threads=2,
            open_files=4,
        )
        for t, value in zip(times, rss, strict=True)
    )
    return capture


THREADS = [
    {
        "name": "MainThread",
        "id": 140001,
        "os_id": 11,
        "active": False,
        "owns_gil": False,
        "stack": [{"function": "wait", "file": "threading.py", "line": 320}],
    },
    {
        "name": "ledger-writer",
        "id": 140002,
        "os_id": 12,
        "active": True,
        "owns_gil": True,
        "stack": [
            {"function": "write_rows", "file": "ledger.py", "line": 40},
            {"function": "run", "file": "threading.py", "line": 1010},
        ],
    },
]


def threads_capture(**fields: Any) -> ProfileCapture:
    capture = done(CaptureKind.THREADS, summary={"threads": THREADS}, **fields)
    write_artefact(capture, "threads", "threads.json", json.dumps(THREADS))
    return capture


def chrometrace(events_per_thread: int = 3) -> list[dict[str, Any]]:
    """py-spy's shape: B/E pairs per thread, outer frame then inner one."""
    events = []
    for tid in (101, 202):
        for i in range(events_per_thread):
            ts = i * 1000
            for ph, name, at in (
                ("B", "outer", ts),
                ("B", f"inner_{tid}", ts),
                ("E", f"inner_{tid}", ts + 900),
                ("E", "outer", ts + 900),
            ):
                events.append({"ph": ph, "name": name, "tid": tid, "pid": 1, "ts": at})
    return events


def trace_capture(events: list[dict[str, Any]] | None = None, **fields: Any) -> ProfileCapture:
    events = chrometrace() if events is None else events
    capture = done(CaptureKind.TRACE, summary={"events": len(events), "threads": 2}, **fields)
    write_artefact(capture, "chrometrace", "trace.chrometrace.json", json.dumps(events))
    return capture


@dataclass
class Captures:
    target: ProfileTarget
    run: LoadTestRun
    cpu: ProfileCapture
    memory: ProfileCapture
    threads: ProfileCapture
    trace: ProfileCapture


def finished_run(requests: int = 10_000, name: str = "by-site load") -> LoadTestRun:
    started = timezone.now() - timedelta(minutes=5)
    return LoadTestRun.objects.create(
        name=name,
        config={"load_model": "closed"},
        status=RunStatus.PASSED,
        started_at=started,
        finished_at=started + timedelta(seconds=60),
        planned_duration_s=60,
        requests=requests,
    )


@pytest.fixture
def captures(db: Any) -> Captures:
    target = ProfileTarget.objects.create(name="emissions target", pid=4242)
    run = finished_run()
    return Captures(
        target=target,
        run=run,
        cpu=cpu_capture(target=target, run=run),
        memory=memory_capture(target=target),
        threads=threads_capture(),
        trace=trace_capture(),
    )


@pytest.fixture
def capturer_client(client: Any, django_user_model: Any) -> Any:
    """A logged-in user who may see and take captures (profiling.add_profilecapture) and no
    more: neither register targets nor capture any process."""
    user = django_user_model.objects.create_user("capturer", "c@example.com", "pw-capture-123")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_profilecapture", "add_profilecapture"])
    )
    client.force_login(user)
    return client
