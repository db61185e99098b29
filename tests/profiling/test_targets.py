from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from profiling import tasks
from profiling.models import CaptureStatus, ProfileCapture, ProfileTarget

pytestmark = pytest.mark.django_db


def test_the_cli_adds_a_target_once(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("profile", "target", "add", "api", "--cmdline", "gunicorn api", "--children")
    call_command("profile", "target", "add", "api", "--pid", "1", "--if-missing")
    target = ProfileTarget.objects.get()
    assert (target.cmdline_match, target.include_children, target.pid) == (
        "gunicorn api",
        True,
        None,
    )
    with pytest.raises(CommandError, match="name: a profile target named 'api' exists") as error:
        call_command("profile", "target", "add", "api", "--pid", "1")
    assert error.value.returncode == 2
    call_command("profile", "target", "list")
    assert "api: 'gunicorn api' with children" in capsys.readouterr().out


def test_the_cli_refuses_a_target_without_a_way_to_find_it() -> None:
    with pytest.raises(CommandError, match="give exactly one of PID, PID file"):
        call_command("profile", "target", "add", "nowhere", "--cmdline", " ")
    assert not ProfileTarget.objects.exists()


@pytest.mark.slow
def test_a_scheduled_capture_takes_the_named_target(
    program: Callable[..., subprocess.Popen[str]],
) -> None:
    process = program("threads")
    ProfileTarget.objects.create(name="svc", pid=process.pid)
    capture_id = tasks.capture_target.apply(kwargs={"target": "svc", "kind": "threads"}).get()
    capture = ProfileCapture.objects.get(pk=capture_id)
    assert capture.status == CaptureStatus.DONE, capture.error
    assert capture.created_by == "schedule"
    assert tasks.capture_target.apply(kwargs={"target": "nope"}).get() is None
