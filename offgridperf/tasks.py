from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task
def ping() -> dict[str, object]:
    """Answers with where it ran: proves a worker is consuming and results come back."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}


@shared_task
def prune() -> dict[str, int]:
    """Delete what is past the RETENTION_* settings (offgridperf.retention): rows per kind."""
    from offgridperf import retention

    return retention.prune()
