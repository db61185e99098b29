from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from loadtests.models import LoadTestRun, RunStatus
from queryopt import capture, services
from queryopt.fingerprints import normalize_query
from queryopt.models import (
    QueryShape,
    QueryStatWindow,
    QueryTarget,
    SlowQuery,
    StatementDelta,
)
from queryopt.snapshots import take_snapshot

QUERY = "SELECT count(*) AS own_probe FROM queryopt_querytarget WHERE name = %s"


@pytest.mark.django_db(transaction=True)
def test_it_meets_pg_stat_statements_on_the_own_targets_fingerprint() -> None:
    own = QueryTarget.objects.create(name="own", dsn=services.own_database_dsn(), own_database=True)
    take_snapshot(own)
    with capture.capturing("own probe"), connection.cursor() as cursor:
        for name in ("a", "b", "c"):
            cursor.execute(QUERY, [name])
    assert capture.flush()
    take_snapshot(own)

    digest = normalize_query(QUERY).fingerprint
    shape = QueryShape.objects.get(fingerprint=digest)
    assert shape.target == own
    assert QueryStatWindow.objects.get(shape=shape).calls == 3
    delta = StatementDelta.objects.get(shape=shape)
    assert delta.calls == 3


@pytest.mark.django_db
def test_it_files_fingerprints_without_target_when_none_is_the_own_database() -> None:
    QueryTarget.objects.create(name="elsewhere", dsn="postgresql://u@h/db")
    with capture.capturing("probe"), connection.cursor() as cursor:
        cursor.execute(QUERY, ["x"])
    capture.flush()
    assert QueryShape.objects.get().target is None


def make_run(name: str, status: str) -> LoadTestRun:
    return LoadTestRun.objects.create(name=name, config={}, status=status)


@pytest.mark.django_db
@override_settings(QUERYOPT_SLOW_MS=0)
def test_it_ties_a_window_to_the_one_run_going_on() -> None:
    run = make_run("steady", RunStatus.RUNNING)
    make_run("earlier", RunStatus.PASSED)
    with capture.capturing("during a run"), connection.cursor() as cursor:
        cursor.execute(QUERY, ["x"])
    capture.flush()
    assert QueryStatWindow.objects.get().run == run
    assert SlowQuery.objects.get().run == run

    make_run("another", RunStatus.RUNNING)
    with capture.capturing("during two runs"), connection.cursor() as cursor:
        cursor.execute(QUERY, ["x"])
    capture.flush()
    assert QueryStatWindow.objects.get(origin="during two runs").run is None
