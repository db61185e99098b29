from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection

from queryopt import capture, services
from queryopt.fingerprints import normalize_query
from queryopt.models import QueryShape, QueryStatWindow, QueryTarget
from tests.queryopt.capture.conftest import calls

PROBE = "SELECT %s::int AS flush_probe"


def probe(origin: str) -> None:
    with capture.capturing(origin), connection.cursor() as cursor:
        cursor.execute(PROBE, [1])


@pytest.mark.django_db
def test_it_never_captures_its_own_flush() -> None:
    with capture.capturing("flushing inside a scope"):
        probe("inner")
        capture.flush()
    capture.flush()

    assert calls("inner", "flush_probe") == 1
    assert not QueryStatWindow.objects.filter(origin="flushing inside a scope").exists()


@pytest.mark.django_db(transaction=True)
def test_it_drops_a_failed_flush_logs_it_once_and_never_breaks_the_request(
    api: Any, batches: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    own = QueryTarget.objects.create(name="own", dsn=services.own_database_dsn(), own_database=True)
    probe("before")
    assert capture.flush()
    own.delete()  # the cached own target is gone: the next flush cannot file under it

    caplog.set_level(logging.WARNING, logger="queryopt.capture")
    probe("lost")
    capture._recorder.last_flush = 0.0  # due: the request's end flushes
    assert api.get("/api/batches/").status_code == 200
    failures = [r for r in caplog.records if "flush failed" in r.getMessage()]
    assert len(failures) == 1
    assert calls("lost", "flush_probe") == 0

    # The own target is looked up again after a failure: the next flush files without one.
    probe("after")
    assert capture.flush()
    assert calls("after", "flush_probe") == 1
    shape = QueryShape.objects.get(fingerprint=normalize_query(PROBE).fingerprint)
    assert shape.target is None
