"""Django signals other apps listen to, so that loadtests never imports them: the query
optimizer snapshots its targets when a run starts and when it ends.

Both are sent with send_robust (a listener's failure is logged, never fails the run), with
`sender=LoadTestRun` and `run_id`.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

# Sent on the worker once a run is claimed, before its first request.
run_started = Signal()
# Sent on the worker after a run ended, however it ended (passed, failed, error, cancelled...).
run_finished = Signal()


def send(signal: Signal, run_id: int) -> None:
    from loadtests.models import LoadTestRun

    for receiver, outcome in signal.send_robust(sender=LoadTestRun, run_id=run_id):
        if isinstance(outcome, Exception):
            log.error("run %s: listener %r failed: %s", run_id, receiver, outcome)
