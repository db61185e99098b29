"""The re-upload stores its rows through the writer EMISSIONS_ROW_WRITER names.

The demo imports no tool app: these tests point the setting at `recording_writer` below,
which wraps the tool's queryopt.batch.copy_rows and records what it was given and returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from emissions.models import Activity, ActivityBatch, BatchStatus
from queryopt.batch import BatchReport, copy_rows
from tests.emissions.conftest import csv_text, many_rows, upload_csv

CALLS: list[dict[str, Any]] = []
WRITER = "tests.emissions.test_reupload_writer.recording_writer"


def recording_writer(conn: Any, table: str, columns: Any, rows: Any, **options: Any) -> BatchReport:
    report = copy_rows(conn, table, columns, rows, **options)
    CALLS.append({"table": table, "columns": list(columns), "report": report})
    return report


@pytest.fixture(autouse=True)
def recorded(settings: Any) -> Iterator[list[dict[str, Any]]]:
    settings.EMISSIONS_ROW_WRITER = WRITER
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def poison_site() -> None:
    """A rule the database enforces and the upload's parser does not know (rolled back with
    the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE emissions_activity ADD CONSTRAINT no_poison CHECK (site <> 'poison')"
        )


def reupload(api: Any, auth: dict[str, str], ref: str, rows: list[tuple[Any, ...]]) -> Any:
    return api.put(
        f"/api/batches/{ref}/", data=csv_text(rows), content_type="text/csv", headers=auth
    )


def test_it_stores_reuploaded_rows_through_the_configured_writer(
    api: Any, auth: dict[str, str], recorded: list[dict[str, Any]]
) -> None:
    batch_id = upload_csv(api, auth, csv_text(many_rows(10)), reference="w").json()["id"]
    assert recorded == []  # the first upload keeps the demo's own path

    response = reupload(api, auth, "w", many_rows(2500, site="site-b"))

    assert response.status_code == 200
    assert response.json()["row_count"] == 2500
    assert len(recorded) == 1
    report = recorded[0]["report"]
    assert (recorded[0]["table"], report.ok_rows, report.batches) == ("emissions_activity", 2500, 3)
    assert Activity.objects.filter(batch_id=batch_id, site="site-b").count() == 2500
    assert Activity.objects.filter(batch_id=batch_id).count() == 2500


def test_it_keeps_the_good_store_batches_and_reports_the_failed_one_by_its_lines(
    api: Any, auth: dict[str, str], recorded: list[dict[str, Any]]
) -> None:
    batch_id = upload_csv(api, auth, csv_text(many_rows(10)), reference="p").json()["id"]
    poison_site()
    rows = many_rows(2500)
    rows[1200] = (*rows[1200][:6], "poison")  # the CSV's line 1202 (header is line 1)

    response = reupload(api, auth, "p", rows)

    assert response.status_code == 200
    batch = ActivityBatch.objects.get(pk=batch_id)
    assert (batch.row_count, batch.error_count, batch.status) == (1500, 1000, BatchStatus.UPLOADED)
    assert Activity.objects.filter(batch_id=batch_id).count() == 1500
    assert not Activity.objects.filter(batch_id=batch_id, line_number__range=(1002, 2001)).exists()
    [error] = batch.error_report
    assert error["stage"] == "store"
    assert error["line"] == 1202
    assert error["reason"].startswith("lines 1002-2001 were not stored (")
    assert "no_poison" in error["reason"]


def test_it_fails_the_batch_when_no_store_batch_succeeds(
    api: Any, auth: dict[str, str], recorded: list[dict[str, Any]]
) -> None:
    batch_id = upload_csv(api, auth, csv_text(many_rows(10)), reference="f").json()["id"]
    poison_site()

    response = reupload(api, auth, "f", many_rows(5, site="poison"))

    assert response.status_code == 200
    batch = ActivityBatch.objects.get(pk=batch_id)
    assert (batch.row_count, batch.error_count, batch.status) == (0, 5, BatchStatus.FAILED)
    assert Activity.objects.filter(batch_id=batch_id).count() == 0
    assert batch.error_report[0]["reason"].startswith("lines 2-6 were not stored")


def test_it_keeps_the_demos_own_insert_when_the_writer_is_empty(
    api: Any, auth: dict[str, str], settings: Any, recorded: list[dict[str, Any]]
) -> None:
    settings.EMISSIONS_ROW_WRITER = ""
    batch_id = upload_csv(api, auth, csv_text(many_rows(10)), reference="e").json()["id"]

    assert reupload(api, auth, "e", many_rows(3)).json()["row_count"] == 3
    assert recorded == []
    assert Activity.objects.filter(batch_id=batch_id).count() == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module.write", "EMISSIONS_ROW_WRITER='no_such_module.write' cannot be imported"),
        ("queryopt.batch.no_such_writer", "EMISSIONS_ROW_WRITER='queryopt.batch.no_such_writer'"),
    ],
)
def test_it_refuses_a_row_writer_that_names_no_function(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from offgridperf.settings import _row_writer

    monkeypatch.setenv("EMISSIONS_ROW_WRITER", value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        _row_writer("EMISSIONS_ROW_WRITER", "queryopt.batch.copy_rows")


def test_it_reads_an_empty_row_writer_as_the_demos_own_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from offgridperf.settings import _row_writer

    monkeypatch.setenv("EMISSIONS_ROW_WRITER", "")
    assert _row_writer("EMISSIONS_ROW_WRITER", "queryopt.batch.copy_rows") == ""
    monkeypatch.delenv("EMISSIONS_ROW_WRITER")
    assert _row_writer("EMISSIONS_ROW_WRITER", "queryopt.batch.copy_rows") == (
        "queryopt.batch.copy_rows"
    )
