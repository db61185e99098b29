"""Queueing a run while the broker is down: a clear reason on the run, never a lost row."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from loadtests import services, tasks
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep
from tests.conftest import closed_port


@pytest.fixture
def definition(db: Any) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="no broker", target_base_url="http://127.0.0.1:8001", duration_s=5, users=1
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok")
    return definition


def test_it_ends_a_run_as_error_naming_the_broker_when_the_broker_does_not_answer(
    definition: LoadTestDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real Celery app on a port where nothing listens: publishing fails as it does when
    # Redis is down. (Celery reads CELERY_BROKER_URL from the environment before its config.)
    dead_url = f"redis://127.0.0.1:{closed_port()}/0"
    monkeypatch.setenv("CELERY_BROKER_URL", dead_url)
    # Not the current app: shared tasks of later tests must not end up on this one.
    dead = Celery("dead-broker", broker=dead_url, set_as_current=False)

    @dead.task(name="loadtests.tasks.execute_run")
    def execute_run(run_id: int) -> None:
        raise AssertionError("never delivered")

    run = services.create_run(definition)

    tasks.dispatch(run, execute_run)

    stored = LoadTestRun.objects.get(pk=run.pk)
    assert stored.status == run.status == "error"
    assert "broker (CELERY_BROKER_URL) did not answer" in stored.status_reason
    assert stored.finished_at is not None and stored.celery_task_id == ""
    dead.close()
