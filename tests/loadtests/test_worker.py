from __future__ import annotations

import time
from typing import Any

import pytest

from loadtests.models import LoadTestDefinition, LoadTestRun


@pytest.mark.django_db(transaction=True)
def test_a_worker_executes_a_run_queued_from_the_admin_action(
    celery_worker_process: Any, admin_client: Any, definition: LoadTestDefinition
) -> None:
    response = admin_client.post(
        "/admin/loadtests/loadtestdefinition/",
        {"action": "run_now", "_selected_action": [definition.pk]},
    )
    assert response.status_code == 302
    run = LoadTestRun.objects.get(definition=definition)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            break
        time.sleep(0.5)
    assert run.status == "passed", run.status_reason
    assert run.trigger == "manual"
    assert run.worker_pid and run.celery_task_id
    assert run.intervals.count() >= 2
    assert run.requests == sum(run.intervals.values_list("requests", flat=True)) > 0
    assert run.latency_p95_ms is not None
