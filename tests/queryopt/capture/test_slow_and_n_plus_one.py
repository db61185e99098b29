from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from queryopt import capture
from queryopt.models import NPlusOne, SlowQuery

pytestmark = pytest.mark.django_db

SLEEP = "SELECT pg_sleep(%s) AS nap"


def nap(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(SLEEP, [seconds])


@override_settings(QUERYOPT_SLOW_MS=30)
def test_it_stores_a_slow_query_redacted_with_its_origin_and_code_frame() -> None:
    with capture.capturing("nightly report"):
        nap(0.05)
        nap(0)  # below the threshold
    capture.flush()

    slow = SlowQuery.objects.get()
    assert slow.origin == "nightly report"
    assert slow.sql == "SELECT pg_sleep($1) AS nap"
    assert slow.params is None
    assert slow.duration_ms >= 50
    assert slow.code_frame.startswith("tests/queryopt/capture/test_slow_and_n_plus_one.py:")
    assert slow.code_frame.endswith(" nap")
    assert slow.error == ""
    assert slow.shape.query_text == "SELECT pg_sleep($1) AS nap"


@override_settings(QUERYOPT_SLOW_MS=30, QUERYOPT_KEEP_PARAMS=True)
def test_it_keeps_the_parameters_when_the_setting_says_so() -> None:
    with capture.capturing("nightly report"):
        nap(0.05)
    capture.flush()

    slow = SlowQuery.objects.get()
    assert (slow.sql, slow.params) == (SLEEP, [0.05])


def test_it_makes_parameters_json_safe() -> None:
    from decimal import Decimal

    assert capture.json_safe([Decimal("1.5"), None, "x" * 2000, float("nan"), {1: b"a"}]) == [
        "1.5",
        None,
        "x" * capture.MAX_PARAM_CHARS,
        "nan",
        {"1": "b'a'"},
    ]


def test_it_catches_the_emissions_batch_list_as_an_n_plus_one(api: Any, batches: list[Any]) -> None:
    for _ in range(2):
        assert api.get("/api/batches/").status_code == 200
        capture.flush()

    group = NPlusOne.objects.get(shape__query_text__contains="COUNT(*)")
    assert group.origin == "GET emissions.views.batches"
    assert (group.occurrences, group.last_count, group.max_count) == (2, 6, 6)
    assert group.total_ms > 0
    assert group.code_frame.startswith("emissions/pages.py:")
    assert group.code_frame.endswith(" batch_list")
    assert NPlusOne.objects.count() == 1  # the list query itself runs once


@override_settings(QUERYOPT_N_PLUS_ONE_MIN=8)
def test_it_flags_nothing_below_the_threshold(api: Any, batches: list[Any]) -> None:
    api.get("/api/batches/")
    capture.flush()
    assert not NPlusOne.objects.exists()
