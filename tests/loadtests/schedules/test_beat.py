from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from tests.conftest import ROOT, worker_env
from tests.processes import wait_for


@pytest.fixture
def beat_process(transactional_db: Any, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery beat` with the DatabaseScheduler, against the test database and broker."""
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "offgridperf",
                "beat",
                "-S",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "-l",
                "INFO",
                "--max-interval",
                "1",
            ],
            cwd=ROOT,
            env=worker_env(connection.settings_dict["NAME"]),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_starts_runs_from_a_schedule_set_on_the_definition_page_with_a_real_beat(
    celery_worker_process: Any,
    admin_client: Any,
    definition: LoadTestDefinition,
    settings: Any,
    beat_process: subprocess.Popen[bytes],
) -> None:
    settings.LOADTEST_SCHEDULE_MIN_INTERVAL_S = 1
    definition.duration_s = 1
    definition.save()
    response = admin_client.post(
        f"/definitions/{definition.pk}/schedule/",
        {
            "schedule_kind": "interval",
            "schedule_every_s": "2",
            "schedule_enabled": "on",
            "overlap_policy": "skip",
        },
    )
    assert response.status_code == 302

    def passed_scheduled_run() -> bool:
        assert beat_process.poll() is None, "beat exited"
        runs = LoadTestRun.objects.filter(definition=definition, trigger="schedule")
        return runs.filter(status=RunStatus.PASSED).exists()

    wait_for(passed_scheduled_run, 90, "a scheduled run that passed")
    runs = LoadTestRun.objects.filter(definition=definition)
    assert set(runs.values_list("trigger", flat=True)) == {"schedule"}
    for skipped in runs.filter(status=RunStatus.SKIPPED):
        assert skipped.status_reason.startswith("skipped: run #")
    # Switched off on the page: beat stops starting runs (it re-reads its entries each tick).
    admin_client.post(
        f"/definitions/{definition.pk}/schedule/",
        {"schedule_kind": "interval", "schedule_every_s": "2", "overlap_policy": "skip"},
    )
    wait_for(lambda: not runs.filter(status__in=["queued", "running"]).exists(), 60, "runs end")
    settled = runs.count()
    time.sleep(6)  # three beat intervals: nothing more may start
    assert runs.count() == settled
