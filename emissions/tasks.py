"""The emissions workload's Celery tasks, and their queueing.

Imports run one way: views -> tasks -> services -> models. Queueing lives here, beside the
task it queues, so that services never import the tasks.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from emissions import services
from emissions.models import ActivityBatch

log = logging.getLogger(__name__)
REASON_MAX_CHARS = 500


@shared_task
def calculate_batch(batch_id: int) -> dict[str, object]:
    """Calculate a batch's emissions; a failure marks the batch `failed` instead of hanging."""
    try:
        return services.calculate(batch_id)
    except ActivityBatch.DoesNotExist:
        return {"batch": batch_id, "status": "missing"}
    except Exception as exc:
        log.exception("calculation of batch %s failed", batch_id)
        reason = f"the calculation failed ({type(exc).__name__}: {exc})"
        services.mark_failed(batch_id, reason[:REASON_MAX_CHARS])
        raise


class QueueUnavailable(Exception):
    """The task broker did not answer: nothing was queued, and the batch is as it was."""


def start_calculation(batch: ActivityBatch) -> ActivityBatch:
    """Mark the batch `calculating` and queue the task once that is committed; raises
    QueueUnavailable, with the batch as it was, when the broker does not take the task."""
    previous = batch.status
    try:
        with transaction.atomic():
            batch, previous = services.begin_calculation(batch.pk)
            calculate_batch.delay_on_commit(batch.pk)
    except KombuOperationalError as exc:
        services.undo_begin_calculation(batch.pk, previous)
        raise QueueUnavailable(str(exc)) from exc
    finally:
        services.forget_cached_batch(batch.pk)
    return batch
