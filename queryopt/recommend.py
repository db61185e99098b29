"""Index advice and plans for a target, as the CLI asks for them: the costliest query shapes of
the stored snapshot windows go to the advisor, one statement goes to EXPLAIN. Errors come out as
`targets.TargetError`, whose message is free of the DSN's password.

Index hints (the target's and the global ones) steer the advice: the advisor never recommends
what a rejected hint names (same table, same columns in order); preferred hints are shown beside
the recommendations. Each recommendation is kept as an IndexRecommendation row (the open one of
the same table and columns is updated), so the snapshot after its index appears can measure it
(indexusage.track_applied)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from queryopt import advisor, explain, targets
from queryopt.indexusage import hints_for, matching_hint
from queryopt.models import (
    HintKind,
    IndexHint,
    IndexRecommendation,
    QueryShape,
    QueryTarget,
    RecommendationStatus,
)

# The advisor plans each query several times per candidate index: bound the work per target.
TOP_QUERIES = 50


@dataclass
class TargetAdvice:
    target: QueryTarget
    advice: advisor.Advice
    # Why HypoPG cannot be used (what to install or run); None when the advice is validated.
    hypopg_problem: str | None
    # The target's and the global preferred hints, shown beside the recommendations.
    preferred: list[IndexHint] = field(default_factory=list)
    # The stored row of each recommendation, in the same order.
    stored: list[IndexRecommendation] = field(default_factory=list)

    def preferred_hint(self, recommendation: advisor.Recommendation) -> IndexHint | None:
        """The preferred hint naming exactly this recommendation's table and columns."""
        return matching_hint(self.preferred, recommendation.table, recommendation.columns)


def costly_queries(target: QueryTarget, limit: int = TOP_QUERIES) -> list[advisor.Query]:
    """The target's query shapes by total time over every stored delta, most costly first."""
    shapes = (
        QueryShape.objects.filter(target=target)
        .annotate(total_ms=Sum("deltas__total_exec_time_ms"))
        .filter(total_ms__gt=0)
        .order_by("-total_ms", "pk")[:limit]
    )
    return [(s.fingerprint, s.query_text, float(s.total_ms)) for s in shapes]


def recommend(target: QueryTarget) -> TargetAdvice:
    """The advisor's recommendations for `target`'s costliest queries, stored."""
    queries = costly_queries(target)
    hints = hints_for(target)
    rejected = [(h.table, list(h.columns)) for h in hints if h.kind == HintKind.REJECTED]
    with targets.connect(target.dsn) as conn:
        try:
            problem = targets.ensure_extension(conn, "hypopg")
            advice = advisor.advise(
                conn,
                queries,
                min_saving_pct=settings.QUERYOPT_MIN_COST_SAVING_PCT,
                rejected=rejected,
            )
        except psycopg.Error as exc:
            raise targets.TargetError(
                targets.describe_error(exc, target.dsn, "advice failed")
            ) from None
    preferred = [h for h in hints if h.kind == HintKind.PREFERRED]
    stored = store_recommendations(target, advice.recommendations)
    return TargetAdvice(target, advice, problem, preferred, stored)


@transaction.atomic
def store_recommendations(
    target: QueryTarget, recommendations: list[advisor.Recommendation]
) -> list[IndexRecommendation]:
    """One IndexRecommendation per recommendation: the open one of the same table and columns
    updated, else a new one. A dismissed one is left dismissed, not opened again."""
    return [_store(target, recommendation) for recommendation in recommendations]


def _store(target: QueryTarget, rec: advisor.Recommendation) -> IndexRecommendation:
    now = timezone.now()
    same = IndexRecommendation.objects.filter(target=target, table=rec.table, columns=rec.columns)
    dismissed = same.filter(status=RecommendationStatus.DISMISSED).first()
    if dismissed is not None:
        return dismissed
    fields = {
        "statement": rec.statement,
        "cost_before": rec.cost_before,
        # Heuristic advice has no cost after: the field keeps the cost before (no saving).
        "cost_after": rec.cost_after if rec.cost_after is not None else rec.cost_before,
        "validated": rec.validated,
        "updated_at": now,
    }
    stored, _ = IndexRecommendation.objects.update_or_create(
        target=target,
        table=rec.table,
        columns=rec.columns,
        status=RecommendationStatus.OPEN,
        defaults=fields,
        create_defaults={**fields, "created_at": now},
    )
    helped = QueryShape.objects.filter(target=target, fingerprint__in=rec.fingerprints)
    stored.shapes.set(helped)
    return stored


def explain_statement(target: QueryTarget, sql: str, *, analyze: bool) -> dict[str, Any]:
    """The plan of `sql` on `target` with its problems: {"plan", "plan_hash", "generic",
    "analyzed", "problems"}. Raises explain.ExplainRefused when a rule forbids it."""
    with targets.connect(target.dsn) as conn:
        try:
            run = explain.explain_analyze if analyze else explain.explain
            result = run(conn, sql)
        except psycopg.Error as exc:
            raise targets.TargetError(
                targets.describe_error(exc, target.dsn, "EXPLAIN failed")
            ) from None
    return result
