"""Celery tasks of the query optimizer: snapshots of the targets' pg_stat_statements, and the
plans of new slow query shapes."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from queryopt import planstore, rollups, services, snapshots, targets
from queryopt.models import QueryTarget, SnapshotReason

log = logging.getLogger(__name__)


@shared_task
def snapshot_target(target_id: int, reason: str, run_id: int | None = None) -> int | None:
    """The new snapshot's id, or None when the target is gone or failed (see its last_error)."""
    target = QueryTarget.objects.filter(pk=target_id).first()
    if target is None:
        return None
    try:
        return snapshots.take_snapshot(target, reason, run_id).pk
    except targets.TargetError:
        return None  # already logged and stored in last_error, redacted


@shared_task
def snapshot_due_targets() -> list[int]:
    """Snapshot each enabled target whose polling interval has passed, and read its indexes
    for the Indexes page; the snapshot ids."""
    taken = []
    for target in snapshots.due_targets(timezone.now()):
        snapshot_id = snapshot_target(target.pk, SnapshotReason.SCHEDULED)
        if snapshot_id is not None:
            taken.append(snapshot_id)
        services.survey_indexes(target)
    return taken


# Connecting and reading are bounded by the target's connect and statement timeouts; the limit
# only guards the worker against anything else.
@shared_task(soft_time_limit=60, time_limit=90)
def refresh_index_survey(target_id: int) -> int | None:
    """Read the target's unused and duplicate indexes (queue `default`, asked for from the
    Indexes page); the survey's id, or None when the target is gone."""
    target = QueryTarget.objects.filter(pk=target_id).first()
    if target is None:
        return None
    return services.survey_indexes(target).pk


@shared_task(soft_time_limit=60, time_limit=90)
def explain_shape(shape_id: int) -> int | None:
    """Plan one query shape asked for from its page (queue `default`); the plan's id, or None
    (the reason is stored on the shape, redacted)."""
    return planstore.explain_on_request(shape_id)


# The name this task had before: messages queued under it still run. Nothing sends it now.
@shared_task(name="queryopt.tasks.explain_fingerprint", soft_time_limit=60, time_limit=90)
def explain_shape_queued_under_old_name(shape_id: int) -> int | None:
    """explain_shape, for a message sent before the rename (its argument is a shape id)."""
    return planstore.explain_on_request(shape_id)


@shared_task
def explain_slow_queries() -> list[int]:
    """EXPLAIN the query shapes with slow executions and no plan yet; the new plans' ids.
    Failures are logged (redacted) and tried at most planstore.MAX_EXPLAIN_ATTEMPTS times."""
    return planstore.explain_slow_queries()


@shared_task
def roll_up_stat_windows() -> int:
    """Sum the settled app-side windows into hourly roll-ups (the Queries page reads those);
    the number of windows summed."""
    return rollups.roll_up_all()
