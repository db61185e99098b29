"""Batch ingest, calculation and cache invalidation of the emissions workload."""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone
from django.utils.module_loading import import_string

from emissions.cache import ACTIVITY, BATCH, EMISSIONS, QUERY
from emissions.models import Activity, ActivityBatch, BatchStatus
from emissions.rows import MAX_REPORTED_ERRORS, ActivityRow, CsvUpload, NumericColumn, ParsedRows
from offgridperf import cache

log = logging.getLogger(__name__)

INSERT_CHUNK = 5000
COPY_CHUNK = 5000
COPY_COLUMNS = (
    "batch_id",
    "line_number",
    "scope",
    "category",
    "activity_type",
    "quantity",
    "unit",
    "date",
    "site",
)
COPY_TYPES = ("int8", "int4", "int2", "varchar", "varchar", "numeric", "varchar", "date", "varchar")


Upload = ParsedRows | CsvUpload


class BatchBusy(Exception):
    """The batch is being calculated; it cannot change until that ends."""


@dataclass(frozen=True)
class BatchInfo:
    organisation: str
    period: str
    reference: str


# --- ingest ----------------------------------------------------------------------------------


def insert_activities(batch_id: int, rows: Iterable[ActivityRow]) -> int:
    """Insert rows: COPY on PostgreSQL, multi-row INSERTs in chunks elsewhere (SQLite).

    Not bulk_create: building model instances costs more than SQLite's insert itself
    (6,000 against 100,000+ rows/s), and the embedded setup seeds 200,000 rows at start.
    """
    if connection.vendor == "postgresql":
        return _copy_rows(batch_id, rows)
    table = connection.ops.quote_name(Activity._meta.db_table)
    placeholders = ", ".join(["%s"] * len(COPY_COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(COPY_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608 - constants only
    count = 0
    iterator = iter(rows)
    with connection.cursor() as cursor:
        while chunk := [(batch_id, *row) for row in islice(iterator, INSERT_CHUNK)]:
            cursor.executemany(sql, chunk)
            count += len(chunk)
    return count


def insert_upload(batch_id: int, upload: Upload) -> int:
    """Insert an upload's good rows; CSV goes to PostgreSQL as COPY text, unparsed where it can."""
    if isinstance(upload, CsvUpload):
        if connection.vendor == "postgresql":
            return _copy_text(upload.copy_lines(batch_id))
        return insert_activities(batch_id, upload.rows())
    return insert_activities(batch_id, upload.rows)


def _copy_statement(binary: bool) -> str:
    table = connection.ops.quote_name(Activity._meta.db_table)
    options = " (FORMAT BINARY)" if binary else ""
    return f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN{options}"


def _copy_rows(batch_id: int, rows: Iterable[ActivityRow]) -> int:
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_statement(True)) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row((batch_id, *row))
            count += 1
    return count


def _copy_text(lines: Iterable[str]) -> int:
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_statement(False)) as copy:
        # Django's cursor wraps psycopg's: COPY needs the raw one.
        iterator = iter(lines)
        while chunk := list(islice(iterator, COPY_CHUNK)):
            copy.write("".join(chunk))
            count += len(chunk)
    return count


def create_batch(info: BatchInfo, upload: Upload) -> ActivityBatch:
    """A new batch with the good rows kept and the bad ones reported."""
    with transaction.atomic():
        batch = ActivityBatch.objects.create(
            reference=info.reference, organisation=info.organisation, period=info.period
        )
        _store_rows(batch, upload)
    invalidate_batch(batch.pk)  # its rows join the listings and the batch list
    return batch


def replace_batch(batch: ActivityBatch, upload: Upload) -> ActivityBatch:
    """Re-upload: the batch's rows are replaced and its results cleared.

    On PostgreSQL the rows go through the writer that EMISSIONS_ROW_WRITER names (see
    `_write_rows`): a store batch that fails is rolled back alone, reported in the batch's
    error report with its lines, and the other store batches are kept.
    """
    writer = row_writer()
    with transaction.atomic():
        batch = ActivityBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == BatchStatus.CALCULATING:
            raise BatchBusy
        batch.activities.all().delete()
        batch.total_kg_co2e = None
        batch.calculated_at = None
        batch.uncalculated_count = 0
        if writer is None:
            _store_rows(batch, upload)
        else:
            _write_rows(batch, upload, writer)
    # After the commit (these services run outermost): no reader can re-cache the old rows.
    invalidate_batch(batch.pk)
    return batch


def _store_rows(batch: ActivityBatch, upload: Upload) -> None:
    batch.row_count = insert_upload(batch.pk, upload)
    report = upload.report if isinstance(upload, CsvUpload) else upload
    batch.error_count = report.error_count
    batch.error_report = report.errors
    batch.status = BatchStatus.UPLOADED if batch.row_count else BatchStatus.FAILED
    batch.save()


# --- re-upload through a configured row writer -------------------------------------------------

STORE_STAGE = "store"
RowWriter = Callable[..., Any]


def row_writer() -> RowWriter | None:
    """The function EMISSIONS_ROW_WRITER names, or None: the demo's own insert path.

    Resolved by name, never imported statically, so that the demo depends on whatever the
    deployment configures (the tool's queryopt.batch.copy_rows by default on PostgreSQL).
    """
    path = getattr(settings, "EMISSIONS_ROW_WRITER", "")
    if not path or connection.vendor != "postgresql":
        return None
    return _import_writer(path)


@lru_cache(maxsize=8)
def _import_writer(path: str) -> RowWriter:
    return import_string(path)


def _write_rows(batch: ActivityBatch, upload: Upload, writer: RowWriter) -> None:
    """Store the good rows with `writer(conn, table, columns, rows)`, which returns a report
    with `ok_rows`, `failed_rows` and `failed_batches` (each `first`, `last`, `row`, `error`:
    0-based indexes into the rows it was given), as queryopt.batch's BatchReport has.

    Inside this transaction each writer batch is a savepoint: a failed one loses its rows
    only, and its lines join the error report (stage "store") and the error count.
    """
    rows = upload.rows() if isinstance(upload, CsvUpload) else upload.rows
    lines = array("q")  # index -> line number, to report a failed batch by its lines
    connection.ensure_connection()
    report = writer(
        connection.connection,
        Activity._meta.db_table,
        COPY_COLUMNS,
        _numbered(batch.pk, rows, lines),
    )
    parsed = upload.report if isinstance(upload, CsvUpload) else upload
    store_errors = [_store_error(failed, lines) for failed in report.failed_batches]
    batch.row_count = report.ok_rows
    batch.error_count = parsed.error_count + report.failed_rows
    batch.error_report = parsed.errors + store_errors
    batch.status = BatchStatus.UPLOADED if batch.row_count else BatchStatus.FAILED
    batch.save()


def _numbered(batch_id: int, rows: Iterable[ActivityRow], lines: array[int]) -> Iterator[tuple]:
    for row in rows:
        lines.append(row.line)
        yield (batch_id, *row)


def _store_error(failed: Any, lines: array[int]) -> dict[str, object]:
    first, last = lines[failed.first], lines[failed.last]
    at = f"; first failing line {lines[failed.row]}" if failed.row is not None else ""
    reason = f"lines {first}-{last} were not stored ({failed.error}{at})"
    line = lines[failed.row] if failed.row is not None else first
    return {"line": line, "reason": reason, "fields": {"rows": reason}, "stage": STORE_STAGE}


# --- calculation -----------------------------------------------------------------------------


# The result column's precision, read from the model: a product that does not fit it (a huge
# quantity times a huge factor) is left NULL with its factor set, instead of failing the whole
# UPDATE with "numeric field overflow", and reported as that row's calculation error.
KG_CO2E = NumericColumn.of(Activity._meta.get_field("kg_co2e"))
CALCULATION_STAGE = "calculation"

CALCULATE_SQL = """
UPDATE emissions_activity AS a
SET factor_id = f.id,
    kg_co2e = CASE
      WHEN ABS(ROUND(a.quantity * f.kg_co2e_per_unit, %(places)s)) < %(limit)s
      THEN a.quantity * f.kg_co2e_per_unit
    END
FROM emissions_emissionfactor AS f
WHERE a.batch_id = %(batch)s
  AND f.activity_type = a.activity_type
  AND f.unit = a.unit
  AND f.valid_from <= a.date
  AND (f.valid_to IS NULL OR f.valid_to >= a.date)
  AND NOT EXISTS (
    SELECT 1 FROM emissions_emissionfactor AS later
    WHERE later.activity_type = f.activity_type
      AND later.unit = f.unit
      AND later.valid_from > f.valid_from
      AND later.valid_from <= a.date
      AND (later.valid_to IS NULL OR later.valid_to >= a.date)
  )
"""


def calculate(batch_id: int) -> dict[str, object]:
    """Turn every activity of the batch into kg CO2e with the factor valid on its date.

    One UPDATE ... FROM (PostgreSQL and SQLite 3.33+) rewrites each row once; where factor
    validities overlap, the latest-starting one wins. Rows no factor matches keep kg_co2e
    NULL and are counted as uncalculated, as are rows whose result does not fit kg_co2e: each
    of those gets an error in the batch's error report (replacing the last calculation's).
    """
    batch = ActivityBatch.objects.get(pk=batch_id)
    with transaction.atomic():
        activities = Activity.objects.filter(batch_id=batch_id)
        activities.filter(factor__isnull=False).update(factor=None, kg_co2e=None)
        with connection.cursor() as cursor:
            cursor.execute(
                CALCULATE_SQL,
                {"batch": batch_id, "places": KG_CO2E.decimal_places, "limit": int(KG_CO2E.limit)},
            )
        missing = activities.filter(kg_co2e__isnull=True).count()
        total = activities.aggregate(total=Sum("kg_co2e"))["total"]
        all_missing = bool(batch.row_count) and missing == batch.row_count
        batch.status = BatchStatus.FAILED if all_missing else BatchStatus.DONE
        batch.uncalculated_count = missing
        batch.total_kg_co2e = total if total is not None else Decimal(0)
        batch.calculated_at = timezone.now()
        batch.error_report = _upload_errors(batch) + _overflow_errors(activities)
        batch.save()
    invalidate_batch(batch_id)
    return {"batch": batch_id, "status": batch.status, "uncalculated": missing}


def _upload_errors(batch: ActivityBatch) -> list[dict[str, object]]:
    return [e for e in batch.error_report if e.get("stage") != CALCULATION_STAGE]


def _overflow_errors(activities: QuerySet[Activity]) -> list[dict[str, object]]:
    """A row error for each row whose factor was found but whose result does not fit."""
    overflowed = (
        activities.filter(factor__isnull=False, kg_co2e__isnull=True)
        .order_by("line_number")
        .values_list("line_number", "quantity", "factor__kg_co2e_per_unit")
    )
    errors = []
    for line, quantity, per_unit in overflowed[:MAX_REPORTED_ERRORS]:
        message = (
            f"{quantity} x {per_unit} = {quantity * per_unit} kg CO2e does not fit "
            f"{KG_CO2E.sql_type}: it must be {KG_CO2E.rule()}"
        )
        errors.append(_calculation_error(line, {"kg_co2e": message}))
    return errors


def _calculation_error(line: int | None, problems: dict[str, str]) -> dict[str, object]:
    reason = "; ".join(f"{name}: {message}" for name, message in problems.items())
    return {"line": line, "reason": reason, "fields": problems, "stage": CALCULATION_STAGE}


def begin_calculation(batch_id: int) -> tuple[ActivityBatch, str]:
    """Mark the batch `calculating`, inside the caller's transaction (which queues the task);
    the batch and its status before. Raises BatchBusy when it is being calculated already."""
    batch = ActivityBatch.objects.select_for_update().get(pk=batch_id)
    if batch.status == BatchStatus.CALCULATING:
        raise BatchBusy
    previous, batch.status = batch.status, BatchStatus.CALCULATING
    batch.save(update_fields=["status", "updated_at"])
    return batch, previous


def undo_begin_calculation(batch_id: int, previous: str) -> None:
    """Put back the status a batch had before a calculation whose task was never queued: left
    `calculating`, the batch would refuse every retry (BatchBusy) with no task to finish it."""
    ActivityBatch.objects.filter(pk=batch_id, status=BatchStatus.CALCULATING).update(
        status=previous
    )


def forget_cached_batch(batch_id: int) -> None:
    """Drop the batch's cached detail, so that its page shows the status just written."""
    BATCH.delete(batch_key(batch_id))


def mark_failed(batch_id: int, reason: str) -> None:
    """The batch is `failed`, with `reason` in its error report (not only in a worker log)."""
    with transaction.atomic():
        batch = ActivityBatch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            return
        batch.status = BatchStatus.FAILED
        batch.error_report = [*_upload_errors(batch), _calculation_error(None, {"batch": reason})]
        batch.save(update_fields=["status", "error_report", "updated_at"])
    invalidate_batch(batch_id)


# --- cache keys and invalidation -------------------------------------------------------------


# Every key is built by cache.key() from validated values (never joined by hand), so that a
# crafted value cannot spell another query's key. Keys of one batch share the prefix
# cache.key(batch_id) ("12:"), which no other batch's keys start with.


def batch_key(batch_id: int) -> str:
    return cache.key("detail", batch_id)


def activity_page_key(batch_id: int, page: int, page_size: int) -> str:
    return cache.key(batch_id, page=page, page_size=page_size)


def totals_key(group_by: str, batch_id: int | None) -> str:
    return cache.key("all" if batch_id is None else batch_id, group_by=group_by)


def reference_key(reference: str) -> str:
    return cache.key("ref", reference=reference)


def listing_key(filters: dict[str, cache.KeyValue]) -> str:
    return cache.key("activities", **filters)


def invalidate_batch(batch_id: int) -> None:
    """Everything cached that a change of this batch can make wrong."""
    BATCH.delete(batch_key(batch_id))
    BATCH.invalidate_prefix(cache.key("list"))
    ACTIVITY.invalidate_prefix(cache.key(batch_id))
    EMISSIONS.invalidate_prefix(cache.key(batch_id))
    EMISSIONS.invalidate_prefix(cache.key("all"))
    # Any listing may include this batch's rows: drop them all (SCAN, immediate everywhere).
    QUERY.invalidate_prefix(cache.key("activities"))
