from __future__ import annotations

import logging

from celery import shared_task

from emissions import services
from emissions.models import ActivityBatch

log = logging.getLogger(__name__)


@shared_task
def calculate_batch(batch_id: int) -> dict[str, object]:
    """Calculate a batch's emissions; a failure marks the batch `failed` instead of hanging."""
    try:
        return services.calculate(batch_id)
    except ActivityBatch.DoesNotExist:
        return {"batch": batch_id, "status": "missing"}
    except Exception:
        log.exception("calculation of batch %s failed", batch_id)
        services.mark_failed(batch_id)
        raise
