"""The diff page of two CPU captures, picked from lists."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from profiling.models import CaptureKind, ProfileCapture
from tests.profiling.pages.conftest import Captures, cpu_capture, finished_run

pytestmark = pytest.mark.django_db

URL = reverse("profiling:diff")
# After the change: work_hot on top in 2 samples of 10 (was 6), parse in 7 (was 3).
AFTER = [[0, 1, 2]] * 2 + [[0, 1, 3]] * 7 + [[0, 1]]


def rows_by_function(response: Any) -> dict[str, dict[str, Any]]:
    return {row["function"]: row for row in response.context["rows"]}


def test_it_offers_recent_finished_cpu_captures_only(
    viewer_client: Any, captures: Captures
) -> None:
    ProfileCapture.objects.create(kind=CaptureKind.CPU, pid=1)  # queued: not offered
    later = cpu_capture()
    response = viewer_client.get(URL)
    assert response.status_code == 200
    assert [value for value, _ in response.context["choices"]] == [later.pk, captures.cpu.pk]
    # The page opens on the two latest: b the newest, a the one before.
    assert (response.context["selected_a"], response.context["selected_b"]) == (
        captures.cpu.pk,
        later.pk,
    )
    assert "rows" not in response.context


def test_it_diffs_two_captures_per_sample(viewer_client: Any, captures: Captures) -> None:
    after = cpu_capture(AFTER)
    response = viewer_client.get(f"{URL}?a={captures.cpu.pk}&b={after.pk}")
    assert response.status_code == 200
    rows = rows_by_function(response)
    assert (rows["work_hot"]["a_self_pct"], rows["work_hot"]["b_self_pct"]) == (60.0, 20.0)
    assert rows["work_hot"]["self_delta"] == -40.0
    assert rows["parse"]["self_delta"] == 40.0
    assert rows["main"]["total_delta"] == 0.0
    assert response.context["per_request"] is False
    html = response.content.decode()
    assert 'data-field="self_delta">-40.00' in html and 'data-field="self_delta">+40.00' in html


def test_it_diffs_per_request_when_both_runs_have_requests(
    viewer_client: Any, captures: Captures
) -> None:
    after = cpu_capture(AFTER, run=finished_run(requests=2_000))
    response = viewer_client.get(f"{URL}?a={captures.cpu.pk}&b={after.pk}")
    work = rows_by_function(response)["work_hot"]
    # a: 6 samples over 10,000 requests; b: 2 over 2,000.
    assert (work["a_self_per_k"], work["b_self_per_k"], work["self_per_k_delta"]) == (
        0.6,
        1.0,
        0.4,
    )
    assert response.context["per_request"] is True
    assert "Self samples / 1,000 requests" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("a={cpu}&b={cpu}", "A capture diffed with itself shows nothing: pick two."),
        ("a={memory}&b={cpu}", "a: Pick one of the recent finished CPU captures listed."),
        ("a=x&b={cpu}", "a: Pick one of the recent finished CPU captures listed."),
    ],
)
def test_it_names_a_bad_pick(
    viewer_client: Any, captures: Captures, query: str, message: str
) -> None:
    url = f"{URL}?" + query.format(cpu=captures.cpu.pk, memory=captures.memory.pk)
    response = viewer_client.get(url)
    assert response.status_code == 400
    assert response.context["problems"] == [message]


def test_it_preselects_the_capture_a_capture_page_links_with(
    viewer_client: Any, captures: Captures
) -> None:
    later = cpu_capture()
    response = viewer_client.get(f"{URL}?b={captures.cpu.pk}")
    assert response.status_code == 200
    assert (response.context["selected_a"], response.context["selected_b"]) == (
        later.pk,
        captures.cpu.pk,
    )


def test_it_reads_a_diff_in_a_fixed_number_of_queries(
    viewer_client: Any, captures: Captures, django_assert_num_queries: Any
) -> None:
    after = cpu_capture(AFTER, run=finished_run(requests=2_000))
    # session, user, the user's permissions (own and groups'), the offered captures, their
    # runs' requests, both captures' functions
    with django_assert_num_queries(7):
        viewer_client.get(f"{URL}?a={captures.cpu.pk}&b={after.pk}")
