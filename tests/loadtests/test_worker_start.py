"""A load generator that starts says it is alive whatever else its start-up runs into."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import IntegrityError

from loadtests import housekeeping, lifecycle, workerhooks
from loadtests.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def test_a_worker_whose_start_up_reaping_fails_still_heartbeats_and_keeps_house(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def reaping_fails(node: str) -> list[int]:
        raise IntegrityError("the run was deleted meanwhile")

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(lifecycle, "reap_node_runs", reaping_fails)
    # The housekeeping thread itself is another test's; here: that it is started.
    monkeypatch.setattr(housekeeping, "start", lambda stop, **options: started.append(options))
    caplog.set_level(logging.ERROR, logger="loadtests.workerhooks")

    workerhooks.on_worker_ready(sender=SimpleNamespace(hostname="gen-7@host", task_consumer=None))

    beat = WorkerHeartbeat.objects.get(node="gen-7@host")
    assert beat.pid == os.getpid()
    assert len(started) == 1 and callable(started[0]["also"])
    assert "gen-7@host: the runs it left running could not be interrupted" in caplog.text
