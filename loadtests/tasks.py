from __future__ import annotations

from celery import shared_task

from loadtests import services
from loadtests.models import LoadTestDefinition, RunTrigger


@shared_task
def execute_run(run_id: int) -> dict[str, object] | None:
    """Execute a queued run on this worker (queue `loadgen`); a no-op if it is not queued.

    A message re-delivered after a worker died finds its run `running`, so it does not start
    the run twice; the reaper marks such a run interrupted, keeping what it recorded.
    """
    # The node name (e.g. worker@host) survives a restart: the restarted worker reaps by it.
    run = services.execute(run_id, worker_node=execute_run.request.hostname or "")
    if run is None:
        return None
    return {"id": run.pk, "status": run.status, "requests": run.requests}


@shared_task
def run_definition(definition_id: int) -> int:
    """Queue a run of a definition; point a django-celery-beat periodic task at this."""
    definition = LoadTestDefinition.objects.get(pk=definition_id)
    return services.queue_run(definition, trigger=RunTrigger.SCHEDULE).pk


@shared_task
def reap_stale_runs() -> list[int]:
    """A backstop on beat's schedule: every worker's and beat's housekeeping thread already
    reaps every few seconds, without the broker (loadtests/housekeeping.py)."""
    return services.reap_stale_runs()
