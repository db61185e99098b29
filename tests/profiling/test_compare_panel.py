"""The profiler's panel on the compare page: memory verdicts and the CPU share that moved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from profiling.models import CaptureKind, CaptureStatus, FunctionStat, ProfileCapture, ProfileTarget

pytestmark = pytest.mark.django_db


def finished_run(definition: LoadTestDefinition, hours_ago: int, requests: int) -> LoadTestRun:
    started = timezone.now() - timedelta(hours=hours_ago)
    return LoadTestRun.objects.create(
        definition=definition, name=definition.name, config={"duration_s": 60},
        status=RunStatus.PASSED, passed=True, started_at=started,
        finished_at=started + timedelta(seconds=60), planned_duration_s=60, requests=requests,
        duration_s=60,
    )  # fmt: skip


def profile(run: LoadTestRun, target: ProfileTarget, shares: dict[str, int], verdict: str) -> None:
    ProfileCapture.objects.create(
        kind=CaptureKind.MEMORY, target=target, run=run, status=CaptureStatus.DONE,
        verdict=verdict, summary={"slope_mb_per_min": 0.1, "lower_mb_per_min": 0.0,
                                  "upper_mb_per_min": 0.2, "r2": 0.5},
    )  # fmt: skip
    cpu = ProfileCapture.objects.create(
        kind=CaptureKind.CPU, target=target, run=run, status=CaptureStatus.DONE,
        summary={"samples": 100},
    )  # fmt: skip
    for line, (function, samples) in enumerate(shares.items(), start=1):
        FunctionStat.objects.create(
            capture=cpu, function=function, file="app/views.py", line=line,
            self_samples=samples, total_samples=samples, self_pct=samples, total_pct=samples,
        )  # fmt: skip


def test_the_compare_page_shows_both_memory_verdicts_and_the_cpu_shift(admin_client: Any) -> None:
    definition = LoadTestDefinition.objects.create(
        name="compared", target_base_url="http://127.0.0.1:8001", duration_s=60, users=1
    )
    target = ProfileTarget.objects.create(name="emissions-api", pid=1)
    a = finished_run(definition, hours_ago=2, requests=6000)
    b = finished_run(definition, hours_ago=1, requests=6000)
    profile(a, target, {"render_totals": 20, "serialize": 30}, "stable")
    profile(b, target, {"render_totals": 60, "serialize": 28}, "leak")
    page = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    assert 'id="panel-profiles"' in page
    assert 'verdict-stable">Stable<' in page and 'verdict-leak">Leak<' in page
    shift = page[page.index("CPU share that moved most") :]
    # render_totals moved +40 points, serialize -2: the bigger move comes first.
    assert shift.index("render_totals") < shift.index("serialize")
    assert "+40.0" in shift
    assert "per 1,000 requests" in shift


def test_runs_without_profiles_get_no_profiles_panel(admin_client: Any) -> None:
    definition = LoadTestDefinition.objects.create(
        name="plain", target_base_url="http://127.0.0.1:8001", duration_s=60, users=1
    )
    a = finished_run(definition, hours_ago=2, requests=10)
    b = finished_run(definition, hours_ago=1, requests=10)
    page = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    assert 'id="panel-profiles"' not in page


def allocations(run: LoadTestRun, top_by_bytes: list[dict[str, Any]]) -> ProfileCapture:
    return ProfileCapture.objects.create(
        kind=CaptureKind.ALLOCATIONS, run=run, status=CaptureStatus.DONE, duration_s=10,
        summary={"top_by_bytes": top_by_bytes},
    )  # fmt: skip


def allocator(function: str, line: int, size: int, count: int) -> dict[str, Any]:
    return {"function": function, "file": "app/ledger.py", "line": line, "bytes": size,
            "count": count}  # fmt: skip


def test_the_compare_page_shows_the_allocators_that_grew(admin_client: Any) -> None:
    definition = LoadTestDefinition.objects.create(
        name="allocating", target_base_url="http://127.0.0.1:8001", duration_s=60, users=1
    )
    a = finished_run(definition, hours_ago=2, requests=6000)
    b = finished_run(definition, hours_ago=1, requests=6000)
    allocations(a, [allocator("cache_rows", 40, 2_000_000, 20), allocator("parse", 7, 900, 9)])
    allocations(
        b,
        [
            allocator("cache_rows", 40, 9_000_000, 90),
            allocator("parse", 7, 500, 5),
            allocator("remember_totals", 60, 3_000_000, 3),
        ],
    )
    page = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    grown = page[page.index('id="allocators-grown"') :]
    grown = grown[: grown.index("</table>")]
    # cache_rows grew by 7 MB, remember_totals is new with 3 MB; parse shrank and is not shown.
    assert grown.index("cache_rows") < grown.index("remember_totals")
    assert "parse" not in grown
    assert ">new<" in grown


def test_the_compare_page_says_which_run_lacks_an_allocation_capture(admin_client: Any) -> None:
    definition = LoadTestDefinition.objects.create(
        name="half", target_base_url="http://127.0.0.1:8001", duration_s=60, users=1
    )
    a = finished_run(definition, hours_ago=2, requests=10)
    b = finished_run(definition, hours_ago=1, requests=10)
    allocations(a, [allocator("cache_rows", 40, 2_000_000, 20)])
    page = admin_client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    assert f"An allocation capture of each run is needed: run #{b.pk} has none." in page
