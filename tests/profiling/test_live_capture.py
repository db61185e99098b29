"""A running memory capture's page draws the samples as they arrive: its status view answers
them while the capture runs, each poll only the newer ones."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from profiling import services
from profiling.models import ProfileTarget

pytestmark = pytest.mark.django_db


def test_a_running_memory_capture_answers_its_samples_as_they_arrive(
    program: Callable[..., subprocess.Popen[str]], viewer_client: Any
) -> None:
    process = program("steady")
    ProfileTarget.objects.create(name="live", pid=process.pid)
    capture = services.create_capture("memory", pid=process.pid, duration_s=5, interval_ms=100)
    url = reverse("profiling:status_json", args=[capture.pk])
    polls: list[dict[str, Any]] = []
    started = time.monotonic()

    def poll_while_running() -> bool:
        # Called by the capture between samples: the page's poll, in the middle of the capture.
        # The first after 1.5 s (a second's samples written), the next at once after it: both
        # well before the 5 s end, even on a loaded machine.
        if time.monotonic() - started > 1.5 and len(polls) < 2:
            after = polls[-1]["samples"][-1][0] if polls and polls[-1]["samples"] else -1
            polls.append(viewer_client.get(url, {"after": after}).json())
        return False

    assert services.execute(capture.pk, should_stop=poll_while_running) == "done"
    first, second = polls
    assert (first["status"], first["active"]) == ("running", True)
    assert len(first["samples"]) >= 5  # a second or more of 100 ms samples, written already
    elapsed = [sample[0] for sample in first["samples"]]
    assert elapsed == sorted(elapsed)
    assert all(sample[1] > 0 for sample in first["samples"])  # RSS in MB
    assert all(sample[0] > elapsed[-1] for sample in second["samples"])
    assert capture.memory_samples.count() >= len(first["samples"]) + len(second["samples"])
    done = viewer_client.get(url).json()
    assert (done["status"], "samples" in done) == ("done", False)


def test_the_status_view_names_a_bad_after(viewer_client: Any) -> None:
    capture = services.create_capture("memory", pid=1, duration_s=3)
    url = reverse("profiling:status_json", args=[capture.pk])
    response = viewer_client.get(url, {"after": "x"})
    assert response.status_code == 400
    assert response.json() == {"error": "after: must be a number of seconds"}
