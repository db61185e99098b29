from __future__ import annotations

import os
from typing import Any

import pytest

from offgridperf.tasks import ping


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_executes_a_task_and_returns_its_result(celery_worker_process: Any) -> None:
    result = ping.delay()
    answer = result.get(timeout=30)
    assert answer["pong"] is True
    assert answer["pid"] not in (os.getpid(), *celery_worker_process.pids)
