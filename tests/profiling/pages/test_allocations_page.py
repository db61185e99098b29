"""An allocation capture's page: the heap's flame graph in bytes, the top allocators, the leaks,
and memray's own file to download for those who may see profiles."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from profiling import heap
from profiling.heap import Block
from profiling.models import CaptureKind, ProfileCapture
from tests.profiling.pages.conftest import done, write_artefact
from tests.profiling.pages.test_detail_page import script_data

pytestmark = pytest.mark.django_db

MAIN = ("main", "app.py", 1)
BLOCKS = [
    Block((("cache_rows", "ledger.py", 40), MAIN), 8_000_000, 80),
    Block((("parse", "io.py", 7), MAIN), 300_000, 3_000),
]


def allocations_capture() -> ProfileCapture:
    found = heap.Heap(
        allocated=BLOCKS, leaked=BLOCKS[:1], peak_bytes=8_500_000, allocations=3_100, window_s=5.0
    )
    capture = done(CaptureKind.ALLOCATIONS, summary={**heap.summary(found), "recorded_s": 5.0})
    write_artefact(capture, "flame", "allocations.flame.json", json.dumps(heap.flame_tree(BLOCKS)))
    write_artefact(capture, "memray", "allocations.memray", "memray's own binary format")
    return capture


def test_it_draws_the_heap_in_bytes_and_lists_the_top_allocators_and_leaks(
    viewer_client: Any,
) -> None:
    capture = allocations_capture()
    response = viewer_client.get(reverse("profiling:detail", args=[capture.pk]))
    assert response.status_code == 200
    flame = script_data(response, "flame-data")
    assert (flame["name"], flame["value"]) == ("all", 8_300_000)
    assert flame["children"][0]["children"][0]["name"] == "cache_rows (ledger.py:40)"
    assert [row["function"] for row in response.context["top_by_bytes"]] == ["cache_rows", "parse"]
    assert [row["function"] for row in response.context["top_by_count"]] == ["parse", "cache_rows"]
    assert [row["function"] for row in response.context["leaks"]] == ["cache_rows"]
    html = response.content.decode()
    assert 'data-unit="bytes"' in html and "profiling/flamegraph.js" in html
    assert 'id="allocators-by-bytes"' in html and 'id="leaked-allocators"' in html
    assert "ledger.py:40" in html and "7.6\xa0MB" in html
    assert reverse("profiling:artefact", args=[capture.pk, "memray"]) in html


def test_it_hands_memrays_file_only_to_those_who_may_see_profiles(
    viewer: Any, no_permission_user: Any
) -> None:
    capture = allocations_capture()
    url = reverse("profiling:artefact", args=[capture.pk, "memray"])
    assert Client().get(url).status_code == 302  # to the login page
    nobody, allowed = Client(), Client()
    nobody.force_login(no_permission_user)
    allowed.force_login(viewer)
    assert nobody.get(url).status_code == 403
    response = allowed.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="capture-{capture.pk}-allocations.memray"'
    )


def test_it_reads_an_allocation_capture_page_in_a_fixed_number_of_queries(
    viewer_client: Any, django_assert_num_queries: Any
) -> None:
    capture = allocations_capture()
    with django_assert_num_queries(5):
        response = viewer_client.get(reverse("profiling:detail", args=[capture.pk]))
    assert response.status_code == 200
