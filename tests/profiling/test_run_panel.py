"""The profiler's panel on the load-test run page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from profiling import services
from profiling.models import CaptureKind, CaptureStatus, MemorySample, ProfileCapture, ProfileTarget

pytestmark = pytest.mark.django_db

MB = 1_000_000


@pytest.fixture
def run() -> LoadTestRun:
    definition = LoadTestDefinition.objects.create(
        name="panelled", target_base_url="http://127.0.0.1:8001", duration_s=60, users=1
    )
    started = timezone.now() - timedelta(minutes=2)
    return LoadTestRun.objects.create(
        definition=definition,
        name="panelled",
        config={"duration_s": 60},
        status=RunStatus.PASSED,
        started_at=started,
        finished_at=started + timedelta(seconds=60),
        planned_duration_s=60,
        throughput_rps=100.0,
    )


def leaking_capture(run: LoadTestRun, target: ProfileTarget) -> ProfileCapture:
    capture = ProfileCapture.objects.create(
        kind=CaptureKind.MEMORY, target=target, pid=4242, run=run, status=CaptureStatus.DONE
    )
    readings = [
        MemorySample(
            capture=capture, at=run.started_at + timedelta(seconds=t), elapsed_s=float(t),
            rss_bytes=100 * MB + t * MB, vms_bytes=500 * MB, cpu_pct=10.0, threads=4,
        )
        for t in range(60)
    ]  # fmt: skip
    MemorySample.objects.bulk_create(readings)
    fitted = services.memory_trend(
        [services.monitor.Reading(r.elapsed_s, r.rss_bytes, None, 0, 0, 0, None) for r in readings]
    )
    capture.verdict, capture.summary = fitted.verdict, {"samples": 60, **fitted.as_dict()}
    capture.save()
    return capture


def test_the_run_page_shows_the_targets_memory_trend_and_links_the_flame_graph(
    admin_client: Any, run: LoadTestRun
) -> None:
    target = ProfileTarget.objects.create(name="emissions-api", pid=4242)
    memory = leaking_capture(run, target)
    cpu = ProfileCapture.objects.create(
        kind=CaptureKind.CPU, target=target, pid=4242, run=run, status=CaptureStatus.DONE,
        summary={"samples": 5400},
    )  # fmt: skip
    page = admin_client.get(reverse("loadtests:run", args=[run.pk])).content.decode()
    assert 'id="panel-profiles"' in page
    assert "emissions-api" in page
    assert 'class="badge verdict-leak">Leak<' in page
    assert "60.00 MB/min" in page
    # 60 MB/min at 100 req/s: 60 / 6,000 requests * 1,000.
    assert "10.000 MB" in page
    assert "<polyline" in page
    assert reverse("profiling:detail", args=[memory.pk]) in page
    assert reverse("profiling:detail", args=[cpu.pk]) in page
    assert "5,400 samples" in page


def test_a_run_without_captures_has_no_profiles_panel(admin_client: Any, run: LoadTestRun) -> None:
    page = admin_client.get(reverse("loadtests:run", args=[run.pk])).content.decode()
    assert 'id="panel-profiles"' not in page
