from __future__ import annotations

from typing import Any

import pytest
from celery.signals import task_postrun, task_prerun
from django.core.exceptions import MiddlewareNotUsed
from django.db import connection
from django.test import Client, override_settings

from offgridperf.celery import app
from queryopt import capture
from queryopt.models import NPlusOne, QueryStatWindow
from tests.queryopt.capture.conftest import calls

TASK_NAME = "tests.queryopt.capture.probe_many"


@app.task(name=TASK_NAME)
def probe_many(times: int) -> int:
    with connection.cursor() as cursor:
        for n in range(times):
            cursor.execute("SELECT %s::int AS task_probe", [n])
    return times


def receivers(signal: Any, uid: str) -> int:
    return sum(1 for key, _ in signal.receivers if key[0] == uid)


@pytest.mark.django_db
def test_it_files_a_celery_task_under_its_name() -> None:
    assert probe_many.apply(args=[6]).get() == 6
    capture.flush()

    assert calls(TASK_NAME, "task_probe") == 6
    group = NPlusOne.objects.get(origin=TASK_NAME)
    assert group.last_count == 6
    assert group.code_frame.startswith("tests/queryopt/capture/test_tasks_and_install.py:")


@pytest.mark.django_db
def test_it_counts_a_task_run_inside_a_request_once() -> None:
    with capture.capturing("GET some.view"):
        probe_many.apply(args=[3])
    capture.flush()

    assert calls(TASK_NAME, "task_probe") == 3
    assert calls("GET some.view", "task_probe") == 0


def test_it_connects_its_task_handlers_once_however_often_installed() -> None:
    capture.install()
    capture.install()
    assert receivers(task_prerun, capture.PRERUN_UID) == 1
    assert receivers(task_postrun, capture.POSTRUN_UID) == 1


@pytest.mark.django_db
def test_it_installs_nothing_when_capture_is_off(settings: Any, batches: list[Any]) -> None:
    settings.ROOT_URLCONF = "emissions.api_urls"
    capture.uninstall()
    try:
        with override_settings(QUERYOPT_CAPTURE=False):
            capture.install()
            assert receivers(task_prerun, capture.PRERUN_UID) == 0
            assert receivers(task_postrun, capture.POSTRUN_UID) == 0
            with pytest.raises(MiddlewareNotUsed):
                capture.CaptureMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
            assert Client().get("/api/batches/").status_code == 200
            probe_many.apply(args=[2])
            capture.flush()
            assert not QueryStatWindow.objects.exists()
    finally:
        capture.install()
    assert receivers(task_prerun, capture.PRERUN_UID) == 1
