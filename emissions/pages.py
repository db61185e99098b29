"""Read side of the emissions API: JSON-ready answers, cached by the strategies in cache.py.

batch status/detail -> BATCH, a batch's activity results -> ACTIVITY, totals -> EMISSIONS,
activity listings -> QUERY. Two reads are deliberately left uncached and slow, as tuning
opportunities for the product to find (see README, "Emissions reference workload"):
activities_by_site (filters and sorts on unindexed columns) and batch_list (N+1).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncMonth

from emissions.cache import ACTIVITY, BATCH, EMISSIONS, QUERY
from emissions.models import Activity, ActivityBatch, validate_reference
from emissions.rows import is_id
from emissions.services import (
    activity_page_key,
    batch_key,
    listing_key,
    reference_key,
    totals_key,
)

ACTIVITY_COLUMNS = (
    "id",
    "batch_id",
    "line_number",
    "scope",
    "category",
    "activity_type",
    "quantity",
    "unit",
    "date",
    "site",
    "kg_co2e",
)
BATCH_LIST_LIMIT = 50


class NotFound(Exception):
    """Raised inside a computation so that a missing batch is never cached."""


def kg(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value), 3)


def resolve_batch(ref: str) -> int:
    """A batch id from its id (digits 0-9) or its reference (the mapping never changes, so it
    is cached). Anything that can be neither is not found, without a query or a cache key."""
    if is_id(ref):
        return int(ref)
    if not validate_reference.regex.fullmatch(ref):
        raise NotFound(ref)

    def lookup() -> int:
        batch_id = ActivityBatch.objects.filter(reference=ref).values_list("id", flat=True).first()
        if batch_id is None:
            raise NotFound(ref)
        return batch_id

    return BATCH.get_or_compute(reference_key(ref), lookup)


def batch_detail(batch_id: int) -> dict[str, Any]:
    return BATCH.get_or_compute(batch_key(batch_id), lambda: _batch_detail(batch_id))


def _batch_detail(batch_id: int) -> dict[str, Any]:
    batch = ActivityBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(batch_id)
    return {**batch_summary(batch), "scopes": _scope_totals(batch.activities.all())}


def batch_summary(batch: ActivityBatch) -> dict[str, Any]:
    return {
        "id": batch.pk,
        "reference": batch.reference,
        "organisation": batch.organisation,
        "period": batch.period,
        "status": batch.status,
        "row_count": batch.row_count,
        "error_count": batch.error_count,
        "errors": batch.error_report,
        "uncalculated_count": batch.uncalculated_count,
        "total_kg_co2e": kg(batch.total_kg_co2e),
        "created_at": batch.created_at.isoformat(),
        "updated_at": batch.updated_at.isoformat(),
        "calculated_at": batch.calculated_at.isoformat() if batch.calculated_at else None,
    }


def _scope_totals(activities: QuerySet[Activity]) -> list[dict[str, Any]]:
    rows = (
        activities.values("scope")
        .annotate(kg_co2e=Sum("kg_co2e"), activities=Count("id"))
        .order_by("scope")
    )
    return [
        {"scope": r["scope"], "kg_co2e": kg(r["kg_co2e"]), "activities": r["activities"]}
        for r in rows
    ]


def activity_dicts(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(zip(ACTIVITY_COLUMNS, row, strict=True))
        item["batch"] = item.pop("batch_id")
        item["quantity"] = float(item["quantity"])
        item["date"] = item["date"].isoformat()
        item["kg_co2e"] = kg(item["kg_co2e"])
        out.append(item)
    return out


def batch_activities(batch_id: int, page: int, page_size: int) -> dict[str, Any]:
    """A batch's calculated activity rows, in upload order."""

    def compute() -> dict[str, Any]:
        batches = ActivityBatch.objects.filter(pk=batch_id)
        row_count = batches.values_list("row_count", flat=True).first()
        if row_count is None:
            raise NotFound(batch_id)
        start = (page - 1) * page_size
        rows = (
            Activity.objects.filter(batch_id=batch_id)
            .order_by("line_number")
            .values_list(*ACTIVITY_COLUMNS)[start : start + page_size]
        )
        return {
            "batch": batch_id,
            "page": page,
            "page_size": page_size,
            "count": row_count,
            "results": activity_dicts(rows),
        }

    return ACTIVITY.get_or_compute(activity_page_key(batch_id, page, page_size), compute)


def totals(group_by: str, batch_id: int | None) -> dict[str, Any]:
    """kg CO2e of the calculated activities, per scope, category, site or month."""

    def compute() -> dict[str, Any]:
        activities = Activity.objects.filter(kg_co2e__isnull=False)
        if batch_id is not None:
            if not ActivityBatch.objects.filter(pk=batch_id).exists():
                raise NotFound(batch_id)
            activities = activities.filter(batch_id=batch_id)
        if group_by == "month":
            activities = activities.annotate(month=TruncMonth("date"))
        column = "month" if group_by == "month" else group_by
        rows = (
            activities.values(column).annotate(total=Sum("kg_co2e"), n=Count("id")).order_by(column)
        )
        groups = [
            {"key": _group_key(r[column]), "kg_co2e": kg(r["total"]), "activities": r["n"]}
            for r in rows
        ]
        grand = sum((r["total"] for r in rows), Decimal(0))
        return {
            "group_by": group_by,
            "batch": batch_id,
            "unit": "kg CO2e",
            "total_kg_co2e": kg(grand),
            "totals": groups,
        }

    return EMISSIONS.get_or_compute(totals_key(group_by, batch_id), compute)


def _group_key(value: Any) -> Any:
    return value.strftime("%Y-%m") if hasattr(value, "strftime") else value


def activity_listing(filters: dict[str, Any]) -> dict[str, Any]:
    """Activities across batches, filtered, most recently uploaded first, paginated."""
    page, page_size = filters["page"], filters["page_size"]

    def compute() -> dict[str, Any]:
        activities = Activity.objects.all()
        for name, lookup in (
            ("scope", "scope"),
            ("category", "category"),
            ("site", "site"),
            ("date_from", "date__gte"),
            ("date_to", "date__lte"),
        ):
            if filters.get(name):
                activities = activities.filter(**{lookup: filters[name]})
        start = (page - 1) * page_size
        rows = activities.order_by("-id").values_list(*ACTIVITY_COLUMNS)
        return {
            "page": page,
            "page_size": page_size,
            "count": activities.count(),
            "results": activity_dicts(rows[start : start + page_size]),
        }

    return QUERY.get_or_compute(listing_key(filters), compute)


def activities_by_site(site: str, page: int, page_size: int) -> dict[str, Any]:
    """A site's activities, largest emitters first. Uncached on purpose: `site` and `kg_co2e`
    are unindexed, so each call scans and sorts the whole table (tuning opportunity 1)."""
    start = (page - 1) * page_size
    rows = list(
        Activity.objects.filter(site=site)
        .order_by(F("kg_co2e").desc(nulls_last=True), "id")
        .values_list(*ACTIVITY_COLUMNS)[start : start + page_size + 1]
    )
    return {
        "site": site,
        "page": page,
        "page_size": page_size,
        "has_next": len(rows) > page_size,
        "results": activity_dicts(rows[:page_size]),
    }


def batch_list() -> dict[str, Any]:
    """The latest batches, each with its activity count. Uncached on purpose, and counting
    each batch's rows with a query of its own: an N+1 (tuning opportunity 2; the counts are
    one GROUP BY away, or already stored as row_count)."""
    results = []
    for batch in ActivityBatch.objects.all()[:BATCH_LIST_LIMIT]:
        summary = batch_summary(batch)
        summary.pop("errors")
        summary["activities"] = batch.activities.count()  # one query per batch
        results.append(summary)
    return {"count": len(results), "results": results}
