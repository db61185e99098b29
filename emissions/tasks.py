from __future__ import annotations

import logging

from celery import shared_task

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
