"""Batch ingest, calculation and cache invalidation of the emissions workload."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from emissions.models import Activity, ActivityBatch, BatchStatus
from emissions.rows import ActivityRow, ParsedRows
from offgridperf import cache

log = logging.getLogger(__name__)

BULK_CREATE_CHUNK = 5000
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


class BatchBusy(Exception):
    """The batch is being calculated; it cannot change until that ends."""


@dataclass(frozen=True)
class BatchInfo:
    organisation: str
    period: str
    reference: str


# --- ingest ----------------------------------------------------------------------------------


def insert_activities(batch_id: int, rows: Sequence[ActivityRow]) -> int:
    """Insert rows: COPY on PostgreSQL, bulk_create in chunks elsewhere."""
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        return _copy_activities(batch_id, rows)
    for start in range(0, len(rows), BULK_CREATE_CHUNK):
        Activity.objects.bulk_create(
            _activity(batch_id, row) for row in rows[start : start + BULK_CREATE_CHUNK]
        )
    return len(rows)


def _activity(batch_id: int, row: ActivityRow) -> Activity:
    return Activity(
        batch_id=batch_id,
        line_number=row.line,
        scope=row.scope,
        category=row.category,
        activity_type=row.activity_type,
        quantity=row.quantity,
        unit=row.unit,
        date=row.date,
        site=row.site,
    )


def _copy_activities(batch_id: int, rows: Iterable[ActivityRow]) -> int:
    table = connection.ops.quote_name(Activity._meta.db_table)
    columns = ", ".join(COPY_COLUMNS)
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row((batch_id, *row))
                count += 1
    return count


def create_batch(info: BatchInfo, parsed: ParsedRows) -> ActivityBatch:
    """A new batch with the good rows kept and the bad ones reported."""
    with transaction.atomic():
        batch = ActivityBatch.objects.create(
            reference=info.reference, organisation=info.organisation, period=info.period
        )
        _store_rows(batch, parsed)
    invalidate_batch(batch.pk)  # its rows join the listings and the batch list
    return batch


def replace_batch(batch: ActivityBatch, parsed: ParsedRows) -> ActivityBatch:
    """Re-upload: the batch's rows are replaced and its results cleared."""
    with transaction.atomic():
        batch = ActivityBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == BatchStatus.CALCULATING:
            raise BatchBusy
        batch.activities.all().delete()
        batch.total_kg_co2e = None
        batch.calculated_at = None
        batch.uncalculated_count = 0
        _store_rows(batch, parsed)
    # After the commit (these services run outermost): no reader can re-cache the old rows.
    invalidate_batch(batch.pk)
    return batch


def _store_rows(batch: ActivityBatch, parsed: ParsedRows) -> None:
    batch.row_count = insert_activities(batch.pk, parsed.rows)
    batch.error_count = parsed.error_count
    batch.error_report = parsed.errors
    batch.status = BatchStatus.UPLOADED if parsed.rows else BatchStatus.FAILED
    batch.save()


# --- calculation -----------------------------------------------------------------------------


def start_calculation(batch: ActivityBatch) -> ActivityBatch:
    """Mark the batch `calculating` and queue the task once that is committed."""
    from emissions.tasks import calculate_batch

    with transaction.atomic():
        batch = ActivityBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == BatchStatus.CALCULATING:
            raise BatchBusy
        batch.status = BatchStatus.CALCULATING
        batch.save(update_fields=["status", "updated_at"])
        calculate_batch.delay_on_commit(batch.pk)
    cache.BATCH.delete(batch_key(batch.pk))
    return batch


CALCULATE_SQL = """
UPDATE emissions_activity AS a
SET factor_id = f.id, kg_co2e = a.quantity * f.kg_co2e_per_unit
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
    NULL and are counted as uncalculated.
    """
    batch = ActivityBatch.objects.get(pk=batch_id)
    with transaction.atomic():
        activities = Activity.objects.filter(batch_id=batch_id)
        activities.filter(factor__isnull=False).update(factor=None, kg_co2e=None)
        with connection.cursor() as cursor:
            cursor.execute(CALCULATE_SQL, {"batch": batch_id})
        missing = activities.filter(factor__isnull=True).count()
        total = activities.aggregate(total=Sum("kg_co2e"))["total"]
        all_missing = bool(batch.row_count) and missing == batch.row_count
        batch.status = BatchStatus.FAILED if all_missing else BatchStatus.DONE
        batch.uncalculated_count = missing
        batch.total_kg_co2e = total if total is not None else Decimal(0)
        batch.calculated_at = timezone.now()
        batch.save()
    invalidate_batch(batch_id)
    return {"batch": batch_id, "status": batch.status, "uncalculated": missing}


def mark_failed(batch_id: int) -> None:
    ActivityBatch.objects.filter(pk=batch_id).update(
        status=BatchStatus.FAILED, updated_at=timezone.now()
    )
    invalidate_batch(batch_id)


# --- cache keys and invalidation -------------------------------------------------------------


def batch_key(batch_id: int) -> str:
    return f"detail:{batch_id}"


def invalidate_batch(batch_id: int) -> None:
    """Everything cached that a change of this batch can make wrong."""
    cache.BATCH.delete(batch_key(batch_id))
    cache.BATCH.invalidate_prefix("list:")
    cache.ACTIVITY.invalidate_prefix(f"{batch_id}:")
    cache.EMISSIONS.invalidate_prefix(f"{batch_id}:")
    cache.EMISSIONS.invalidate_prefix("all:")
    # Any listing may include this batch's rows: drop them all (SCAN, immediate everywhere).
    cache.QUERY.invalidate_prefix("")
