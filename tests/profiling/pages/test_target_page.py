"""A monitored target's page: its windows, verdict, restarts, runs, GC, and who may see it and
acknowledge its leak alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loadtests.models import LoadTestRun, RunStatus
from offgridperf import access
from profiling.models import (
    MonitorAlert,
    MonitorRestart,
    MonitorSample,
    ProfileTarget,
    Resolution,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitored() -> ProfileTarget:
    """A target read every 10 s for the last 50 minutes, flat at 100 MB, restarted 20 minutes
    ago (PID 11 -> 12), with the agent's GC figures, and a run 30 to 25 minutes ago."""
    target = ProfileTarget.objects.create(name="api", cmdline_match="gunicorn api")
    now = timezone.now()
    rows = []
    for i in range(300):
        at = now - timedelta(minutes=50) + timedelta(seconds=10 * i)
        pid = 11 if at < now - timedelta(minutes=20) else 12
        rows.append(
            MonitorSample(
                target=target,
                resolution=Resolution.RAW,
                at=at,
                pid=pid,
                rss_bytes=100_000_000,
                rss_max_bytes=100_000_000,
                uss_bytes=90_000_000,
                uss_max_bytes=90_000_000,
                cpu_pct=5.0,
                cpu_max_pct=5.0,
                threads=4,
                open_files=9,
                processes=[{"pid": pid, "rss_bytes": 100_000_000, "uss_bytes": 90_000_000,
                            "cpu_pct": 5.0, "threads": 4, "open_files": 9}],
                gc={"collections": [i * 3, i, 0], "pause_ms": [i * 0.5, i * 0.1, 0]},
            )
        )  # fmt: skip
    MonitorSample.objects.bulk_create(rows)
    MonitorRestart.objects.create(
        target=target, at=now - timedelta(minutes=20), old_pid=11, new_pid=12
    )
    LoadTestRun.objects.create(
        name="checkout",
        config={"load_model": "closed"},
        status=RunStatus.PASSED,
        started_at=now - timedelta(minutes=30),
        finished_at=now - timedelta(minutes=25),
    )
    return target


def test_it_draws_the_hour_with_its_verdict_restart_run_and_gc(
    viewer_client: Any, monitored: ProfileTarget
) -> None:
    response = viewer_client.get(reverse("profiling:target", args=[monitored.pk]))
    assert response.status_code == 200
    chart = response.context["chart"]
    # 300 readings and one break where the PID changed.
    assert len(chart["t"]) == 301
    assert chart["rss_mb"].count(None) == 1
    assert chart["rss_mb"][0] == 100.0
    assert chart["has_gc"]
    # Per-step deltas of the cumulative figures: 3 gen-0 collections every 10 s.
    assert chart["gc"]["collections"][0][1:4] == [3, 3, 3]
    assert chart["restarts"][0]["label"] == "11 → 12"
    assert [run["label"] for run in response.context["runs"]] == [
        f"run #{LoadTestRun.objects.get().pk} checkout"
    ]
    fit = response.context["fit"]
    assert response.context["fit_since_restart"]
    assert fit["verdict"] == "stable", fit["reason"]
    assert fit["points"] <= 120
    content = response.content.decode()
    assert "Restart " in content and "PID 11 → 12" in content
    assert "read every" in content


def test_it_reads_the_minute_tier_and_the_raw_readings_after_it_for_a_day(
    viewer_client: Any, monitored: ProfileTarget
) -> None:
    from profiling import monitoring

    monitoring.roll_up(timezone.now())
    url = reverse("profiling:target", args=[monitored.pk])
    response = viewer_client.get(url, {"window": "24h"})
    assert response.status_code == 200
    minutes = MonitorSample.objects.filter(resolution=Resolution.MINUTE)
    assert 49 <= minutes.count() <= 52  # a minute with the restart holds two PIDs: two rows
    # The minute rows, then only the raw readings of the minute not rolled up yet.
    rolled_to = minutes.latest("at").at + timedelta(minutes=1)
    unrolled = MonitorSample.objects.filter(resolution=Resolution.RAW, at__gte=rolled_to).count()
    assert unrolled <= 6
    assert response.context["row_count"] == minutes.count() + unrolled


def test_it_names_the_rule_of_a_window_it_does_not_know(
    viewer_client: Any, monitored: ProfileTarget
) -> None:
    response = viewer_client.get(reverse("profiling:target", args=[monitored.pk]), {"window": "2d"})
    assert response.status_code == 400
    assert "window: must be one of 1h, 24h, 7d" in response.content.decode()


def test_it_shows_the_target_only_to_those_who_see_profiles(
    no_permission_client: Any, monitored: ProfileTarget
) -> None:
    url = reverse("profiling:target", args=[monitored.pk])
    assert Client().get(url).status_code == 302  # to the login page
    response = no_permission_client.get(url)
    assert response.status_code == 403
    assert access.VIEW_PROFILES in response.content.decode()


def test_it_lets_only_engineers_acknowledge_a_leak_alert(
    viewer_client: Any, viewer: Any, monitored: ProfileTarget
) -> None:
    alert = MonitorAlert.objects.create(target=monitored, message="api: memory leaks")
    url = reverse("profiling:acknowledge_monitor_alert", args=[monitored.pk, alert.pk])
    page = viewer_client.get(reverse("profiling:target", args=[monitored.pk])).content.decode()
    assert "api: memory leaks" in page
    assert 'id="acknowledge"' not in page
    assert viewer_client.post(url).status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None

    viewer.groups.add(Group.objects.get(name=access.ENGINEERS))
    response = viewer_client.post(url)
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == viewer
    assert viewer_client.get(url).status_code == 405  # POST only
