"""Only registered profile targets (and their children, when the target says so) are captured:
a capture of any other process is refused at preflight with one clear message, whether it came
from the page, the admin, the CLI or a Celery task. Capturing any process is its own
permission (profiling.capture_any_process), as is registering a target."""

from __future__ import annotations

import html
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from profiling import services, tasks
from profiling.models import CaptureStatus, ProfileCapture, ProfileTarget
from tests.profiling import conftest as profiling_fixtures

pytestmark = pytest.mark.django_db
# The profiler tests' fixtures: real programs to capture, artefacts in a temporary directory.
program = profiling_fixtures.program
artefacts_in_tmp = profiling_fixtures.artefacts_in_tmp

Program = Callable[..., subprocess.Popen[str]]
NOT_REGISTERED = "is not a registered profile target's process"


def user_with(django_user_model: Any, username: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(username, password="pw-12345678", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def take(pid: int, **options: Any) -> ProfileCapture:
    """A thread dump of `pid` (the quickest capture), through the Celery task's body."""
    capture = services.create_capture("threads", pid=pid, **options)
    tasks.take_capture.apply(args=[capture.pk]).get()
    capture.refresh_from_db()
    return capture


def test_a_capture_of_the_web_process_is_refused_without_the_permission() -> None:
    # This test process stands in for the web: a Python process of the workers' uid.
    capture = take(os.getpid())
    assert capture.status == CaptureStatus.ERROR
    assert capture.error.startswith(f"pid: process {os.getpid()} {NOT_REGISTERED}")
    assert "profiling.capture_any_process" in capture.error
    assert not capture.artefacts and not capture.summary


def test_a_registered_target_and_the_children_it_includes_are_captured(program: Program) -> None:
    parent = program("parent")
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    target = ProfileTarget.objects.create(name="svc", pid=parent.pid)

    assert take(parent.pid).status == CaptureStatus.DONE
    refused = take(child_pid)
    assert refused.status == CaptureStatus.ERROR and NOT_REGISTERED in refused.error
    with_children = take(parent.pid, include_children=True)
    assert with_children.status == CaptureStatus.ERROR
    assert with_children.error.startswith("children: ")

    target.include_children = True
    target.save()
    assert take(child_pid).status == CaptureStatus.DONE


@pytest.mark.slow
def test_the_permission_captures_any_process(program: Program) -> None:
    process = program("threads")
    capture = take(process.pid, any_process=True)
    assert capture.status == CaptureStatus.DONE, capture.error


def test_the_page_refuses_the_web_process_to_a_user_who_may_only_capture(
    client: Client, django_user_model: Any
) -> None:
    client.force_login(
        user_with(django_user_model, "capturer", "view_profilecapture", "add_profilecapture")
    )
    form = {"kind": "threads", "pid": str(os.getpid()), "duration_s": "1", "rate_hz": "100",
            "interval_ms": "100"}  # fmt: skip
    response = client.post("/profiles/take/", form)
    assert response.status_code == 302
    capture = ProfileCapture.objects.get()
    assert capture.any_process is False
    tasks.take_capture.apply(args=[capture.pk]).get()
    page = client.get(f"/profiles/{capture.pk}/").content.decode()
    assert NOT_REGISTERED in html.unescape(page)
    # Registering a target is not part of capturing.
    assert client.get("/admin/profiling/profiletarget/add/").status_code == 403


def test_the_page_marks_a_capture_by_a_user_with_the_permission(
    client: Client, django_user_model: Any
) -> None:
    client.force_login(
        user_with(
            django_user_model,
            "operator",
            "view_profilecapture",
            "add_profilecapture",
            "capture_any_process",
        )
    )
    form = {"kind": "threads", "pid": "4242", "duration_s": "1", "rate_hz": "100",
            "interval_ms": "100"}  # fmt: skip
    assert client.post("/profiles/take/", form).status_code == 302
    assert ProfileCapture.objects.get().any_process is True


def test_the_admin_sets_any_process_from_the_permission_not_the_form(
    client: Client, django_user_model: Any
) -> None:
    client.force_login(user_with(django_user_model, "capturer", "add_profilecapture"))
    form = {"kind": "threads", "pid": str(os.getpid()), "duration_s": "1", "rate_hz": "100",
            "interval_ms": "100", "any_process": "on"}  # fmt: skip
    response = client.post("/admin/profiling/profilecapture/add/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    capture = ProfileCapture.objects.get()
    assert capture.any_process is False
    assert services.execute(capture.pk) == CaptureStatus.ERROR
    capture.refresh_from_db()
    assert NOT_REGISTERED in capture.error


def test_the_cli_refuses_an_unregistered_process_in_one_line() -> None:
    with pytest.raises(CommandError, match=NOT_REGISTERED) as refused:
        call_command("profile", "threads", "--pid", str(os.getpid()))
    assert refused.value.returncode == 2
    assert "\n" not in str(refused.value)
