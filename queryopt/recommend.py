"""Index advice and plans for a target, as the CLI asks for them: the costliest fingerprints of
the stored snapshot windows go to the advisor, one statement goes to EXPLAIN. Errors come out as
`targets.TargetError`, whose message is free of the DSN's password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db.models import Sum

from queryopt import advisor, explain, targets
from queryopt.models import QueryFingerprint, QueryTarget

# The advisor plans each query several times per candidate index: bound the work per target.
TOP_QUERIES = 50


@dataclass
class TargetAdvice:
    target: QueryTarget
    advice: advisor.Advice
    # Why HypoPG cannot be used (what to install or run); None when the advice is validated.
    hypopg_problem: str | None


def costly_queries(target: QueryTarget, limit: int = TOP_QUERIES) -> list[advisor.Query]:
    """The target's fingerprints by total time over every stored delta, most costly first."""
    fingerprints = (
        QueryFingerprint.objects.filter(target=target)
        .annotate(total_ms=Sum("deltas__total_exec_time_ms"))
        .filter(total_ms__gt=0)
        .order_by("-total_ms", "pk")[:limit]
    )
    return [(f.fingerprint, f.query_text, float(f.total_ms)) for f in fingerprints]


def recommend(target: QueryTarget) -> TargetAdvice:
    """The advisor's recommendations for `target`'s costliest queries."""
    queries = costly_queries(target)
    with targets.connect(target.dsn) as conn:
        try:
            problem = targets.ensure_extension(conn, "hypopg")
            advice = advisor.advise(
                conn, queries, min_saving_pct=settings.QUERYOPT_MIN_COST_SAVING_PCT
            )
        except psycopg.Error as exc:
            raise targets.TargetError(
                targets.describe_error(exc, target.dsn, "advice failed")
            ) from None
    return TargetAdvice(target, advice, problem)


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
