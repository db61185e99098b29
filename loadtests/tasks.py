"""The Celery tasks of load tests, and the helpers that queue them: views, the admin, the API
and the CLI queue a run with queue_run here (loadtests/services.py creates it), never through
the lifecycle directly. Services never import this module: what queues a task lives beside it."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from loadtests import alerts, documents, lifecycle, schedules, services, shards
from loadtests.models import LoadTestDefinition, LoadTestRun, OverlapPolicy, RunTrigger

log = logging.getLogger(__name__)


def queue_run(
    definition: LoadTestDefinition,
    *,
    trigger: str = RunTrigger.MANUAL,
    user: Any = None,
    overrides: dict[str, Any] | None = None,
) -> LoadTestRun:
    """Create a run and hand it to the `loadgen` queue once the transaction commits."""
    with transaction.atomic():
        run = services.create_run(definition, trigger=trigger, user=user, overrides=overrides)
        transaction.on_commit(lambda: dispatch(run, execute_run))
    return run


def dispatch(run: LoadTestRun, task: Any) -> None:
    # Limits follow the run's own length, not the worker-wide default.
    soft = run.planned_duration_s + 120
    try:
        if run.shards > 1:  # a Celery group of execute_shard tasks (loadtests/shards.py)
            shards.dispatch(run, execute_shard)
            return
        result = task.apply_async(args=[run.pk], soft_time_limit=soft, time_limit=soft + 60)
    except KombuOperationalError as exc:
        # The broker is down (Celery already retried): end the run now with the reason, rather
        # than fail the request or leave a run queued that no worker will ever see.
        services.end_unqueued(run, exc)
        return
    services.record_task_id(run, result.id)


@shared_task
def execute_run(run_id: int) -> dict[str, object] | None:
    """Execute a queued run on this worker (queue `loadgen`); a no-op if it is not queued.

    A message re-delivered after a worker died finds its run `running`, so it does not start
    the run twice; the reaper marks such a run interrupted, keeping what it recorded.
    """
    # The node name (e.g. worker@host) survives a restart: the restarted worker reaps by it.
    run = lifecycle.execute(run_id, worker_node=execute_run.request.hostname or "")
    if run is None:
        return None
    return {"id": run.pk, "status": run.status, "requests": run.requests}


@shared_task
def execute_shard(run_id: int, index: int) -> dict[str, object] | None:
    """Generate shard `index` of a sharded run on this worker (queue `loadgen`); a no-op when
    the run ended or the shard was taken (a late or re-delivered message)."""
    shard = lifecycle.execute_shard(run_id, index, worker_node=execute_shard.request.hostname or "")
    if shard is None:
        return None
    return {"run": run_id, "shard": index, "status": shard.status, "requests": shard.requests}


@shared_task
def run_definition(definition_id: int) -> int:
    """Queue a run of a definition; point a django-celery-beat periodic task at this."""
    definition = LoadTestDefinition.objects.get(pk=definition_id)
    return queue_run(definition, trigger=RunTrigger.SCHEDULE).pk


@shared_task
def run_scheduled(definition_id: int) -> int | None:
    """What beat starts for a definition's schedule (loadtests/schedules.py keeps the entry):
    with overlap policy `skip`, a run of it still going makes this one a recorded skip."""
    with transaction.atomic():
        # Locked so that two firings at once cannot both see no run going.
        locked = LoadTestDefinition.objects.select_for_update()
        definition = locked.filter(pk=definition_id).first()
        if definition is None or not definition.schedule_kind or not definition.schedule_enabled:
            return None  # deleted or switched off after beat loaded the entry
        going = schedules.overlapping_run(definition)
        if going is not None and definition.overlap_policy == OverlapPolicy.SKIP:
            config = documents.freeze_definition(definition)
            return schedules.record_skipped(definition, going, config).pk
        try:
            return queue_run(definition, trigger=RunTrigger.SCHEDULE).pk
        except documents.RunRefused as exc:
            log.warning("%s: scheduled run refused: %s", definition, documents.problems_text(exc))
            return None


@shared_task
def reap_stale_runs() -> list[int]:
    """A backstop on beat's schedule: every worker's and beat's housekeeping thread already
    reaps every few seconds, without the broker (loadtests/housekeeping.py)."""
    return lifecycle.reap_stale_runs()


# -- alerts (loadtests/alerts.py makes and sends them) ---------------------------------------


def on_run_finished(sender: Any = None, run_id: int | None = None, **kwargs: Any) -> None:
    """Listener of loadtests.events.run_finished (connected in LoadtestsConfig.ready): the
    finished run's alerts, and their delivery queued once they are committed."""
    if run_id is not None and alerts.alert_finished_run(run_id):
        queue_delivery()


def queue_delivery(countdown: float = 0) -> None:
    """Ask a worker to send what is due, once the transaction commits; the beat entry every
    30 s is the backstop when the broker is away."""

    def send() -> None:
        try:
            deliver_alerts.apply_async(countdown=countdown)
        except Exception as exc:  # noqa: BLE001 - the broker is down: beat picks it up later
            log.warning("alerts: could not queue deliver_alerts: %s", exc)

    transaction.on_commit(send)


# Registered under its first module's name: beat's database rows, the beat schedule in settings
# and messages already queued all name it so.
@shared_task(name="loadtests.alerts.deliver_alerts")
def deliver_alerts() -> dict[str, int]:
    """Send every due alert delivery (queued after an alert, and on beat every 30 s); a retry
    comes back as this task again when it is due."""
    return alerts.deliver_due(queue_retry=queue_delivery)
