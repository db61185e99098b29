from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from loadtests.models import LoadTestDefinition, LoadTestRun, RunInterval, RunStatus
from offgridperf import retention, storage, tasks
from offgridperf.celery import app
from profiling.models import MemorySample, ProfileCapture
from queryopt.models import QueryShape, QueryStatWindow, StatRollupState

OLD = timedelta(days=400)


@pytest.fixture(autouse=True)
def artefacts(settings: Any, tmp_path: Path) -> Path:
    settings.PROFILING_ARTEFACT_DIR = tmp_path / "profiles"
    storage.forget_artefact_usage()
    return settings.PROFILING_ARTEFACT_DIR


@pytest.fixture
def definition(db: Any) -> LoadTestDefinition:
    return LoadTestDefinition.objects.create(name="smoke", target_base_url="http://127.0.0.1:1")


def finished_run(definition: LoadTestDefinition, age: timedelta, **fields: Any) -> LoadTestRun:
    ended = timezone.now() - age
    run = LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={},
        status=fields.pop("status", RunStatus.FAILED),
        started_at=ended - timedelta(seconds=2),
        finished_at=ended,
        **fields,
    )
    LoadTestRun.objects.filter(pk=run.pk).update(created_at=run.started_at)
    for index in range(2):
        RunInterval.objects.create(run=run, index=index, started_at=run.started_at, requests=5)
    return run


def capture(run: LoadTestRun | None, age: timedelta, artefact_root: Path, **fields: Any) -> Any:
    made = ProfileCapture.objects.create(
        kind="memory", status=fields.pop("status", "done"), run=run
    )
    ProfileCapture.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)
    folder = artefact_root / f"capture-{made.pk}"
    folder.mkdir(parents=True)
    (folder / "profile.speedscope.json").write_text("{}" * 50)
    at = timezone.now() - age
    for elapsed in range(3):
        MemorySample.objects.create(
            capture=made, at=at, elapsed_s=elapsed, rss_bytes=1, vms_bytes=1, cpu_pct=0, threads=1
        )
    return made


def window(run: LoadTestRun | None, age: timedelta) -> QueryStatWindow:
    shape, _ = QueryShape.objects.get_or_create(fingerprint="f1", query_text="SELECT 1")
    end = timezone.now() - age
    return QueryStatWindow.objects.create(
        shape=shape,
        window_start=end - timedelta(seconds=1),
        window_end=end,
        origin="GET x",
        run=run,
        calls=1,
        total_ms=1,
        min_ms=1,
        max_ms=1,
        p95_ms=1,
        p99_ms=1,
    )


@dataclass
class World:
    old: LoadTestRun
    kept: LoadTestRun
    chosen_baseline: LoadTestRun
    standing_baseline: LoadTestRun
    recent: LoadTestRun
    old_capture: ProfileCapture
    kept_capture: ProfileCapture
    running_capture: ProfileCapture
    recent_capture: ProfileCapture
    old_window: QueryStatWindow
    kept_window: QueryStatWindow
    tail_window: QueryStatWindow


@pytest.fixture
def world(definition: LoadTestDefinition, artefacts: Path) -> World:
    old = finished_run(definition, OLD)
    kept = finished_run(definition, OLD, keep=True)
    chosen = finished_run(definition, OLD + timedelta(days=1))
    # The last passing run stands in as the baseline while none is chosen... of another test.
    other = LoadTestDefinition.objects.create(name="other", target_base_url="http://127.0.0.1:1")
    standing = finished_run(other, OLD, status=RunStatus.PASSED)
    finished_run(other, OLD + timedelta(days=2), status=RunStatus.PASSED)  # an older pass: pruned
    definition.baseline_run = chosen
    definition.save()
    recent = finished_run(definition, timedelta(days=1))
    old_window, kept_window = window(old, OLD), window(kept, OLD)
    StatRollupState.objects.create(rolled_up_to=kept_window.pk)
    return World(
        old=old,
        kept=kept,
        chosen_baseline=chosen,
        standing_baseline=standing,
        recent=recent,
        old_capture=capture(old, OLD, artefacts),
        kept_capture=capture(kept, OLD, artefacts),
        running_capture=capture(None, OLD, artefacts, status="running"),
        recent_capture=capture(None, timedelta(days=1), artefacts),
        old_window=old_window,
        kept_window=kept_window,
        tail_window=window(old, OLD),  # not rolled up yet: the Queries page still reads it
    )


def everything() -> dict[str, int]:
    return {
        "intervals": RunInterval.objects.count(),
        "captures": ProfileCapture.objects.count(),
        "windows": QueryStatWindow.objects.count(),
        "samples": MemorySample.objects.count(),
    }


def test_a_dry_run_counts_per_kind_and_deletes_nothing(world: World, artefacts: Path) -> None:
    before = everything()
    out = StringIO()
    call_command("prune", "--dry-run", stdout=out)
    assert everything() == before
    assert (artefacts / f"capture-{world.old_capture.pk}").is_dir()
    text = out.getvalue()
    # old run and the older pass of "other": 2 intervals each
    assert "run intervals: would delete 4 (older than 90 days)" in text
    assert "profile captures: would delete 1 (older than 30 days)" in text
    assert "query windows: would delete 1 (older than 14 days)" in text
    # samples of the old capture, and of the running one (its old seconds)
    assert "memory samples: would delete 6 (older than 30 days)" in text


def test_prune_deletes_old_rows_and_artefact_files(world: World, artefacts: Path) -> None:
    counts = retention.prune()
    assert counts == {"run_intervals": 4, "profiles": 1, "query_windows": 1, "memory_samples": 3}
    assert not world.old.intervals.exists()
    assert not ProfileCapture.objects.filter(pk=world.old_capture.pk).exists()
    assert not (artefacts / f"capture-{world.old_capture.pk}").exists()
    assert not QueryStatWindow.objects.filter(pk=world.old_window.pk).exists()
    # The run itself and its summary stay.
    assert LoadTestRun.objects.filter(pk=world.old.pk).exists()
    # Nothing is left to do: a second prune deletes nothing.
    assert set(retention.prune().values()) == {0}


def test_kept_runs_baselines_and_their_captures_are_never_pruned(
    world: World, artefacts: Path
) -> None:
    retention.prune()
    for run in (world.kept, world.chosen_baseline, world.standing_baseline, world.recent):
        assert run.intervals.count() == 2, run
    assert world.kept_capture.memory_samples.count() == 3
    assert (artefacts / f"capture-{world.kept_capture.pk}" / "profile.speedscope.json").is_file()
    assert QueryStatWindow.objects.filter(pk=world.kept_window.pk).exists()


def test_captures_in_progress_recent_ones_and_unrolled_windows_stay(world: World) -> None:
    retention.prune()
    assert ProfileCapture.objects.filter(pk=world.running_capture.pk).exists()
    assert world.recent_capture.memory_samples.count() == 3
    assert QueryStatWindow.objects.filter(pk=world.tail_window.pk).exists()


def test_zero_days_keeps_a_kind_for_ever(world: World, settings: Any) -> None:
    settings.RETENTION_RUN_INTERVALS_DAYS = 0
    out = StringIO()
    call_command("prune", stdout=out)
    assert world.old.intervals.count() == 2
    assert "run intervals: deleted 0 (kept for ever (RETENTION_RUN_INTERVALS_DAYS=0))" in (
        out.getvalue()
    )


def test_the_prune_task_is_scheduled_and_registered(world: World) -> None:
    scheduled = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "offgridperf.tasks.prune" in scheduled
    assert tasks.prune.name in app.tasks
    assert tasks.prune.name == "offgridperf.tasks.prune"
    assert tasks.prune()["profiles"] == 1


def test_the_overview_shows_database_and_artefact_sizes(
    admin_client: Any, world: World, artefacts: Path
) -> None:
    body = admin_client.get("/").content.decode()
    line = body[body.index('id="storage"') :].split("</p>")[0]
    assert "Storage: database" in line and "size unknown" not in line
    assert "profile artefacts 400\xa0bytes in 4 files" in line
    assert "run intervals 90 d" in line


def test_engineers_mark_a_run_to_keep_on_its_page(
    client: Any, viewer: Any, admin_user: Any, world: World
) -> None:
    client.force_login(viewer)
    assert client.post(f"/runs/{world.old.pk}/keep/", {"keep": "1"}).status_code == 403
    assert "Keep for good" not in client.get(f"/runs/{world.old.pk}/").content.decode()
    admin_client = client
    admin_client.force_login(admin_user)
    page = admin_client.get(f"/runs/{world.old.pk}/").content.decode()
    assert 'id="keep-run"' in page and "Keep for good" in page
    admin_client.post(f"/runs/{world.old.pk}/keep/", {"keep": "1"})
    world.old.refresh_from_db()
    assert world.old.keep
    retention.prune()
    assert world.old.intervals.count() == 2
    response = admin_client.post(f"/runs/{world.old.pk}/keep/", {"keep": "maybe"}, follow=True)
    assert "keep: give 1 (keep the run) or 0" in response.content.decode()


def test_keep_is_the_one_field_of_a_run_the_admin_changes(admin_client: Any, world: World) -> None:
    url = f"/admin/loadtests/loadtestrun/{world.old.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="keep"' in page and 'name="status"' not in page
    response = admin_client.post(url, {"keep": "on", "status": "passed"})
    assert response.status_code == 302
    world.old.refresh_from_db()
    assert world.old.keep and world.old.status == RunStatus.FAILED
