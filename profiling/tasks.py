"""Celery tasks of the profiler: one capture per task, on the default queue (a load-test
worker's `loadgen` slot is never held by a profile)."""

from __future__ import annotations

import logging

from celery import shared_task

from profiling import monitoring, runs, services

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def take_capture(capture_id: int) -> str:
    """Take a queued capture; its final status (a second delivery does nothing)."""
    return services.execute(capture_id)


def queue_capture(capture_id: int) -> None:
    take_capture.delay_on_commit(capture_id)


@shared_task
def capture_target(target: str, kind: str = "cpu", duration_s: float = 10.0) -> int | None:
    """Periodic captures: a django-celery-beat periodic task (set in the admin) names this task
    with e.g. {"target": "emissions", "kind": "memory", "duration_s": 60}. The capture's id, or
    None when the target is unknown (logged)."""
    return services.capture_named_target(target, kind, duration_s)


@shared_task
def profile_run(run_id: int, target_id: int) -> list[int]:
    """Memory throughout and a CPU profile of the steady state of one run, for one target."""
    return runs.profile_run(run_id, target_id)


def on_run_started(sender: object = None, run_id: int | None = None, **kwargs: object) -> None:
    """loadtests.events.run_started: queue the profiles of the run's definition's targets."""
    run = runs.LoadTestRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    for target in runs.targets_of(run):
        profile_run.delay(run.pk, target.pk)


# -- the monitor's leak alerts (profiling/monitoring.py makes and sends them) -----------------


def queue_monitor_alert(alert_id: int, countdown: float = 0.0) -> None:
    """Queue the delivery of a monitor alert; a broker that does not answer is logged, and the
    alert stays on its target's page."""
    try:
        deliver_monitor_alert.apply_async((alert_id,), countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - a broker outage must not stop the monitor
        log.warning("monitor alert %s: could not queue its delivery: %s", alert_id, exc)


@shared_task
def deliver_monitor_alert(alert_id: int) -> float | None:
    """One attempt at each pending channel of a monitor alert; queued again for the retries."""
    retry_in = monitoring.deliver(alert_id)
    if retry_in is not None:
        queue_monitor_alert(alert_id, countdown=retry_in)
    return retry_in
