"""Writes of load-test runs outside a worker: a run created from its definition, and the marks
queueing leaves on it. Queueing itself lives in loadtests/tasks.py, beside the tasks it queues,
so that nothing here imports the tasks."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from loadtests import documents, shards
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus, RunTrigger

log = logging.getLogger(__name__)


def create_run(
    definition: LoadTestDefinition,
    *,
    trigger: str = RunTrigger.MANUAL,
    user: Any = None,
    overrides: dict[str, Any] | None = None,
) -> LoadTestRun:
    """A queued run whose config is the definition's document, with `overrides` (document
    fields, e.g. duration_s, from the API) in place; raises documents.RunRefused when it may
    not start."""
    frozen = {**documents.freeze_definition(definition), **(overrides or {})}
    documents.refuse_if_problems(frozen)
    if problems := shards.shard_problems(frozen):
        raise documents.RunRefused(problems)
    run = LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config=frozen,
        trigger=trigger,
        started_by=user if getattr(user, "is_authenticated", False) else None,
        planned_duration_s=int(frozen["duration_s"]),
        shards=int(frozen.get("shards") or 1),
    )
    if run.shards > 1:
        shards.create_shards(run)
    return run


def record_task_id(run: LoadTestRun, task_id: str | None) -> None:
    LoadTestRun.objects.filter(pk=run.pk).update(celery_task_id=task_id or "")


def end_unqueued(run: LoadTestRun, broker_error: Exception) -> None:
    """End a queued run the broker would not take, with the reason, rather than leave it
    queued where no worker will ever see it; `run` is updated in place."""
    reason = (
        f"Not started: the broker (CELERY_BROKER_URL) did not answer ({broker_error}). "
        "Start it again once the broker is back."
    )
    log.warning("run %s: %s", run.pk, reason)
    ended = {"status": RunStatus.ERROR, "status_reason": reason, "finished_at": timezone.now()}
    LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(**ended)
    for name, value in ended.items():
        setattr(run, name, value)
