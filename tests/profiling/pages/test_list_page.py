"""The captures list: filters, bad filters, and "Take a capture"."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from profiling.models import CaptureStatus, ProfileCapture
from tests.profiling.pages.conftest import Captures

pytestmark = pytest.mark.django_db

URL = reverse("profiling:index")
TAKE = reverse("profiling:take")


def shown(response: Any) -> set[int]:
    return {capture.pk for capture in response.context["captures"]}


def test_it_sends_anonymous_visitors_to_the_login_page(client: Any) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_lists_every_capture_with_its_run_link(viewer_client: Any, captures: Captures) -> None:
    response = viewer_client.get(URL)
    assert response.status_code == 200
    assert shown(response) == {
        captures.cpu.pk,
        captures.memory.pk,
        captures.threads.pk,
        captures.trace.pk,
    }
    html = response.content.decode()
    assert reverse("loadtests:run", args=[captures.run.pk]) in html
    assert "emissions target" in html
    assert 'class="badge verdict-leak"' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("kind=memory", ["memory"]),
        ("kind=cpu&status=done", ["cpu"]),
        ("status=error", []),
    ],
)
def test_it_narrows_by_kind_and_status(
    viewer_client: Any, captures: Captures, query: str, expected: list[str]
) -> None:
    response = viewer_client.get(f"{URL}?{query}")
    assert shown(response) == {getattr(captures, kind).pk for kind in expected}


def test_it_narrows_by_target_and_run(viewer_client: Any, captures: Captures) -> None:
    by_target = viewer_client.get(f"{URL}?target={captures.target.pk}")
    assert shown(by_target) == {captures.cpu.pk, captures.memory.pk}
    by_run = viewer_client.get(f"{URL}?run={captures.run.pk}")
    assert shown(by_run) == {captures.cpu.pk}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=heap", "kind: Pick one of cpu, memory, threads, trace, allocations."),
        ("run=abc", "run: Enter a whole number."),
        ("status=lost", "status: Pick one of queued, running, done, error."),
        ("target=0", "target: Ensure this value is greater than or equal to 1."),
    ],
)
def test_it_names_a_bad_filter_and_lists_without_it(
    viewer_client: Any, captures: Captures, query: str, message: str
) -> None:
    response = viewer_client.get(f"{URL}?{query}")
    assert response.status_code == 200
    assert response.context["problems"] == [message]
    assert message in response.content.decode()
    assert len(shown(response)) == 4


def test_it_hides_the_take_form_from_users_without_the_permission(
    viewer_client: Any, captures: Captures
) -> None:
    assert 'id="take-capture"' not in viewer_client.get(URL).content.decode()


def test_it_refuses_a_capture_without_the_permission(viewer_client: Any) -> None:
    response = viewer_client.post(TAKE, {"kind": "cpu", "pid": "4242", "duration_s": "5"})
    assert response.status_code == 403
    assert not ProfileCapture.objects.exists()


def form(**fields: str) -> dict[str, str]:
    return {"kind": "cpu", "duration_s": "5", "rate_hz": "100", "interval_ms": "100", **fields}


def test_it_queues_a_capture_of_a_pid_and_shows_its_page(
    capturer_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = capturer_client.post(TAKE, form(pid="4242", children="yes"))
    capture = ProfileCapture.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("profiling:detail", args=[capture.pk])
    assert (capture.kind, capture.pid, capture.status) == ("cpu", 4242, CaptureStatus.QUEUED)
    assert capture.duration_s == 5.0 and capture.include_children is True
    assert capture.created_by == "capturer"
    assert len(queued) == 1  # take_capture.delay_on_commit


def test_it_queues_a_capture_of_a_target_with_its_children_setting(
    capturer_client: Any, captures: Captures, django_capture_on_commit_callbacks: Any
) -> None:
    captures.target.include_children = True
    captures.target.save()
    with django_capture_on_commit_callbacks() as queued:
        capturer_client.post(TAKE, form(kind="memory", target=str(captures.target.pk)))
    capture = ProfileCapture.objects.latest("pk")
    assert capture.target == captures.target and capture.pid is None
    assert capture.include_children is True
    assert len(queued) == 1


def test_it_refuses_an_allocation_capture_of_a_target_with_its_children(
    capturer_client: Any, captures: Captures
) -> None:
    captures.target.include_children = True
    captures.target.save()
    before = ProfileCapture.objects.count()
    response = capturer_client.post(TAKE, form(kind="allocations", target=str(captures.target.pk)))
    assert response.status_code == 400
    assert "children: an allocation capture attaches to one process" in response.content.decode()
    assert ProfileCapture.objects.count() == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"duration_s": "0"}, "duration_s: must be more than 0 and at most 600 s"),
        ({"duration_s": "ten"}, "duration_s: Enter a number."),
        ({"kind": "trace", "duration_s": "60"}, "duration_s: a trace lasts at most 30 s"),
        ({"rate_hz": "5000"}, "rate_hz: must be between 1 and 1000 samples per second"),
        ({"pid": ""}, "pid: Give a PID or pick a profile target."),
    ],
)
def test_it_names_the_bad_field_and_creates_nothing(
    capturer_client: Any,
    django_capture_on_commit_callbacks: Any,
    fields: dict[str, str],
    message: str,
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = capturer_client.post(TAKE, form(**{"pid": "4242", **fields}))
    assert response.status_code == 400
    problems = response.context["take_form"].problems()
    assert len(problems) == 1 and problems[0].startswith(message)
    assert message in response.content.decode()
    assert not ProfileCapture.objects.exists()
    assert queued == []


def test_it_reads_the_list_in_a_fixed_number_of_queries(
    viewer_client: Any, captures: Captures, django_assert_num_queries: Any
) -> None:
    # session, user, count, targets, the user's and its groups' permissions (may it take a
    # capture?), one page of captures with their targets
    with django_assert_num_queries(7):
        viewer_client.get(f"{URL}?kind=cpu&target={captures.target.pk}")
