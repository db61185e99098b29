"""Celery tasks of the profiler: one capture per task, on the default queue (a load-test
worker's `loadgen` slot is never held by a profile)."""

from __future__ import annotations

from celery import shared_task

from profiling import services


@shared_task(acks_late=True)
def take_capture(capture_id: int) -> str:
    """Take a queued capture; its final status (a second delivery does nothing)."""
    return services.execute(capture_id)


def queue_capture(capture_id: int) -> None:
    take_capture.delay_on_commit(capture_id)
