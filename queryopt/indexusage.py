"""A target's indexes as the Indexes page shows them, and the before/after measurement of a
recommended index once it is in place.

The unused and duplicate indexes are read from the target by `survey_indexes`, in a Celery
task (queryopt.tasks.refresh_index_survey, after each scheduled snapshot or on request), and
stored as the target's IndexSurvey: `index_report` reads only the database, so a target that
hangs can never hold a web thread.

After each snapshot (snapshots.take_snapshot calls `track_applied`), every OPEN recommendation
of the target whose index now exists (an index leading with its columns) is marked APPLIED at
that snapshot's time. Its "before" is the weighted mean time of its query shapes over the
deltas of the snapshots taken before that moment; its "after", refreshed at each later
snapshot, over the deltas of the snapshots taken after it. The window in which the index
appeared mixes both and counts in neither.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from queryopt import indexes, targets
from queryopt.dsn import redact
from queryopt.models import (
    HintKind,
    IndexHint,
    IndexRecommendation,
    IndexSurvey,
    QueryTarget,
    RecommendationStatus,
    StatementDelta,
    StatementSnapshot,
)

log = logging.getLogger(__name__)


def track_applied(target: QueryTarget, snapshot: StatementSnapshot) -> list[int]:
    """Mark the target's open recommendations whose index exists as applied and refresh the
    after figures of the applied ones; the ids marked applied now. A target that cannot be
    asked is logged (redacted) and tried again at the next snapshot."""
    open_ones = list(target.recommendations.filter(status=RecommendationStatus.OPEN))
    newly: list[int] = []
    if open_ones:
        try:
            newly = _mark_applied(target, open_ones, snapshot.taken_at)
        except (targets.TargetError, psycopg.Error) as exc:
            message = targets.describe_error(exc, target.dsn, "cannot look for applied indexes")
            log.warning("queryopt target %s: %s", target.name, redact(message, target.dsn))
    applied = target.recommendations.filter(
        status=RecommendationStatus.APPLIED, applied_at__lt=snapshot.taken_at
    )
    for recommendation in applied:
        _measure_after(recommendation)
    return newly


def _mark_applied(
    target: QueryTarget, open_ones: list[IndexRecommendation], at: datetime
) -> list[int]:
    newly = []
    with targets.connect(target.dsn) as conn:
        for recommendation in open_ones:
            name = indexes.existing_index_covering(
                conn, recommendation.table, recommendation.columns
            )
            if name is None:
                continue
            calls, mean = _window(recommendation, Q(snapshot__taken_at__lt=at))
            recommendation.status = RecommendationStatus.APPLIED
            recommendation.applied_at = at
            recommendation.applied_index = name
            recommendation.before_calls, recommendation.before_mean_ms = calls, mean
            recommendation.updated_at = at
            recommendation.save()
            newly.append(recommendation.pk)
    return newly


def _measure_after(recommendation: IndexRecommendation) -> None:
    calls, mean = _window(recommendation, Q(snapshot__taken_at__gt=recommendation.applied_at))
    IndexRecommendation.objects.filter(pk=recommendation.pk).update(
        after_calls=calls, after_mean_ms=mean
    )


def _window(recommendation: IndexRecommendation, when: Q) -> tuple[int, float | None]:
    """Calls and weighted mean time (ms) of the recommendation's query shapes' deltas."""
    sums = StatementDelta.objects.filter(
        when,
        shape__in=recommendation.shapes.all(),
        snapshot__target_id=recommendation.target_id,
    ).aggregate(calls=Sum("calls"), total=Sum("total_exec_time_ms"))
    calls = int(sums["calls"] or 0)
    return calls, (float(sums["total"]) / calls if calls else None)


def hints_for(target: QueryTarget) -> list[IndexHint]:
    """The target's own hints and the global ones."""
    return list(IndexHint.objects.filter(Q(target=target) | Q(target__isnull=True)))


def same_table(a: str, b: str) -> bool:
    """Whether two table names as written (optionally schema-qualified) name one table."""
    return a.removeprefix("public.") == b.removeprefix("public.")


def matching_hint(hints: list[IndexHint], table: str, columns: list[str]) -> IndexHint | None:
    """The first hint on `table` with exactly `columns`, in order."""
    return next(
        (h for h in hints if same_table(h.table, table) and list(h.columns) == list(columns)),
        None,
    )


def survey_indexes(target: QueryTarget) -> IndexSurvey:
    """Read the target's unused and duplicate indexes now (bounded by its connect and statement
    timeouts) and store them; a target that cannot answer keeps the last reading, with the
    reason (redacted)."""
    survey, _ = IndexSurvey.objects.get_or_create(target=target)
    problem = ""
    try:
        with targets.connect(target.dsn) as conn:
            unused, duplicate = indexes.unused_indexes(conn), indexes.duplicate_indexes(conn)
    except targets.TargetError as exc:
        problem = str(exc)
    except psycopg.Error as exc:
        problem = targets.describe_error(exc, target.dsn, "cannot read the indexes")
    if problem:
        log.warning("queryopt target %s: %s", target.name, redact(problem, target.dsn))
        survey.problem = redact(problem, target.dsn)[:2000]
    else:
        survey.unused, survey.duplicate, survey.problem = unused, duplicate, ""
    survey.taken_at = timezone.now()
    survey.save()
    return survey


def _stored_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # "name" as well as "index": the page's templates call an index's name that.
    shown = []
    for row in rows:
        reset = row.get("stats_reset")
        if isinstance(reset, str):
            row = {**row, "stats_reset": parse_datetime(reset)}
        shown.append({**row, "name": row["index"]})
    return shown


def index_report(target: QueryTarget) -> dict[str, Any]:
    """What the Indexes page of `target` shows, from the database only (a fixed number of
    queries; the target is never connected to).

    {"recommended": stored recommendations, newest first (dicts, see `_recommendation_row`),
     "unused": indexes.unused_indexes rows, "duplicate": indexes.duplicate_indexes rows
     (each also with "name", the index's name), as the last survey read them,
     "hints": the target's and the global hints (dicts), "problem": why the last survey could
     not read the indexes (redacted), or None,
     "survey": {"taken_at", "requested_at", "refreshing"} of the last survey}.
    Reads the stored recommendations, never runs the advisor (that is `queryopt recommend`).
    """
    hints = hints_for(target)
    recommended = [
        _recommendation_row(r, hints) for r in target.recommendations.prefetch_related("shapes")
    ]
    survey = IndexSurvey.objects.filter(target=target).first() or IndexSurvey(target=target)
    return {
        "recommended": recommended,
        "unused": _stored_rows(survey.unused),
        "duplicate": _stored_rows(survey.duplicate),
        "hints": [_hint_row(hint) for hint in hints],
        "problem": redact(survey.problem, target.dsn) if survey.problem else None,
        "survey": {
            "taken_at": survey.taken_at,
            "requested_at": survey.requested_at,
            "refreshing": survey.refreshing,
        },
    }


def _recommendation_row(r: IndexRecommendation, hints: list[IndexHint]) -> dict[str, Any]:
    preferred_hints = [h for h in hints if h.kind == HintKind.PREFERRED]
    preferred = matching_hint(preferred_hints, r.table, r.columns)
    return {
        "id": r.pk,
        "table": r.table,
        "columns": list(r.columns),
        "statement": r.statement,
        "cost_before": r.cost_before,
        "cost_after": r.cost_after if r.validated else None,
        "saving_pct": r.saving_pct if r.validated else None,
        "validated": r.validated,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "applied_at": r.applied_at,
        "applied_index": r.applied_index,
        "before_mean_ms": r.before_mean_ms,
        "before_calls": r.before_calls,
        "after_mean_ms": r.after_mean_ms,
        "after_calls": r.after_calls,
        "shapes": [{"id": s.pk, "query": s.query_text} for s in r.shapes.all()],
        "preferred_hint": _hint_row(preferred) if preferred else None,
    }


def _hint_row(hint: IndexHint) -> dict[str, Any]:
    return {
        "id": hint.pk,
        "table": hint.table,
        "columns": list(hint.columns),
        "kind": hint.kind,
        "note": hint.note,
        "created_by": hint.created_by,
        "global": hint.target_id is None,
    }
