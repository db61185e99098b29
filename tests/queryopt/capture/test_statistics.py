from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from queryopt import capture
from queryopt.fingerprints import normalize_query
from queryopt.models import QueryShape, QueryStatWindow
from stats.histogram import Histogram
from tests.queryopt.capture.conftest import calls

pytestmark = pytest.mark.django_db

PROBE = "SELECT %s::int + 1 AS probe"


def test_it_counts_exactly_the_calls_made_per_fingerprint_and_origin() -> None:
    with capture.capturing("script one"), connection.cursor() as cursor:
        for n in range(7):
            cursor.execute(PROBE, [n])
    with capture.capturing("script two"), connection.cursor() as cursor:
        cursor.execute(PROBE, [1])
    assert capture.flush()

    digest = normalize_query(PROBE).fingerprint
    shape = QueryShape.objects.get(target=None, fingerprint=digest)
    window = QueryStatWindow.objects.get(shape=shape, origin="script one")
    assert window.calls == 7
    assert window.errors == 0
    assert window.min_ms <= window.mean_ms <= window.max_ms <= window.p99_ms + 0.001
    assert Histogram.decode(window.histogram).total_count == 7
    assert calls("script two", "probe") == 1
    assert shape.query_text == "SELECT $1::int + $2 AS probe"


def test_it_fingerprints_each_distinct_sql_string_once() -> None:
    with capture.capturing("cache"), connection.cursor() as cursor:
        for n in range(5):
            cursor.execute(PROBE, [n])
    assert list(capture._fingerprints) == [PROBE]


def test_it_counts_errors_and_keeps_the_exception_raised() -> None:
    with capture.capturing("divisions"), connection.cursor() as cursor:
        cursor.execute("SELECT 1 / %s AS ratio", [1])
        for _ in range(2):
            with pytest.raises(DatabaseError), transaction.atomic():
                cursor.execute("SELECT 1 / %s AS ratio", [0])
    capture.flush()

    window = QueryStatWindow.objects.get(origin="divisions", shape__query_text__contains="/")
    assert (window.calls, window.errors) == (3, 2)


def test_it_writes_nothing_outside_a_request_or_task() -> None:
    with connection.cursor() as cursor:
        cursor.execute(PROBE, [1])
    capture.flush()
    assert not QueryStatWindow.objects.exists()


def test_it_files_a_request_under_its_method_and_view(api: Any, batches: list[Any]) -> None:
    assert api.get("/api/batches/").status_code == 200
    capture.flush()

    origins = set(QueryStatWindow.objects.values_list("origin", flat=True))
    assert origins == {"GET emissions.views.batches"}
    total = QueryStatWindow.objects.aggregate(total=Sum("calls"))["total"]
    assert total == 1 + len(batches)  # the list, then one count per batch


def test_it_keeps_the_flush_out_of_the_requests_query_count(
    api: Any, batches: list[Any], django_assert_num_queries: Any
) -> None:
    api.get("/api/batches/")
    capture._recorder.last_flush = 0.0  # due: the next request's end flushes
    with django_assert_num_queries(1 + len(batches)):
        api.get("/api/batches/")
    assert calls("GET emissions.views.batches", "COUNT(*)") == 2 * len(batches)
