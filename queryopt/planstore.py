"""Stored plans: each EXPLAIN of a query shape becomes a QueryPlan row with its plan hash, so a
plan change between runs shows as a new hash; and the plan of every new slow shape, taken
by a beat task (tasks.explain_slow_queries).

Slow means a SlowQuery row of the app's own capture, or a snapshot window whose mean time
reached the target's slow threshold. A slow shape is explained with the parameters of one
of its SlowQuery rows when they were kept, else as PostgreSQL's generic plan of its normalised
text. A shape that cannot be
explained is logged (redacted) and tried again on the next beats, at most MAX_EXPLAIN_ATTEMPTS
times in all (a rule's refusal, e.g. SQL PostgreSQL cannot parse, at once counts as the last).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone

from queryopt import explain, services, targets
from queryopt.dsn import redact
from queryopt.fingerprints import normalize_query
from queryopt.models import PlanSource, QueryPlan, QueryShape, QueryTarget, SlowQuery
from queryopt.plans import plan_problems

log = logging.getLogger(__name__)

MAX_EXPLAIN_ATTEMPTS = 3
# Failed attempts are counted in the cache; after this long a shape may be tried anew.
ATTEMPTS_TTL_S = 7 * 86400
# Bounds the work of one beat: the rest waits for the next one.
SLOW_BATCH = 50


def store_plan(
    shape: QueryShape,
    result: dict[str, Any],
    source: str,
    run: Any = None,
) -> QueryPlan:
    """A QueryPlan of `shape` from an explain.explain / explain_analyze result."""
    document = result["plan"]
    return QueryPlan.objects.create(
        shape=shape,
        captured_at=timezone.now(),
        plan_hash=result["plan_hash"],
        plan=document,
        generic=bool(result.get("generic")),
        analyzed=bool(result.get("analyzed")),
        problems=[asdict(problem) for problem in plan_problems(document)],
        total_cost=document["Plan"].get("Total Cost"),
        source=source,
        run=run,
    )


def previous_plan(plan: QueryPlan) -> QueryPlan | None:
    """The plan stored for the same shape just before `plan`."""
    earlier = QueryPlan.objects.filter(shape_id=plan.shape_id, pk__lt=plan.pk)
    return earlier.order_by("-captured_at", "-pk").first()


def plan_changed(plan: QueryPlan) -> bool | None:
    """Whether `plan`'s hash differs from the previous plan's; None for a first plan."""
    previous = previous_plan(plan)
    return None if previous is None else previous.plan_hash != plan.plan_hash


def plan_history(shape: QueryShape) -> list[dict[str, Any]]:
    """The distinct plan hashes of `shape`, oldest first: {"plan_hash", "first_seen",
    "last_seen", "count"} each (three queries' worth of rows in one)."""
    rows = (
        QueryPlan.objects.filter(shape=shape)
        .values("plan_hash")
        .annotate(first_seen=Min("captured_at"), last_seen=Max("captured_at"), count=Count("pk"))
        .order_by("first_seen", "plan_hash")
    )
    return list(rows)


def statement_shape(target: QueryTarget, sql: str) -> QueryShape:
    """The target's shape of `sql`, created when the query was never seen there."""
    normalized = normalize_query(sql)
    shape, _ = QueryShape.objects.get_or_create(
        target=target, fingerprint=normalized.fingerprint, defaults={"query_text": normalized.text}
    )
    return shape


def unplanned_slow_shapes() -> QuerySet[QueryShape]:
    """Fingerprints with no stored plan that were slow, oldest first: an app query stored as
    a SlowQuery, or a target's query whose mean time in a snapshot window reached the
    target's slow threshold."""
    slow_on_target = Q(
        target__isnull=False, deltas__mean_exec_time_ms__gte=F("target__slow_threshold_ms")
    )
    return (
        QueryShape.objects.filter(Q(slow_queries__isnull=False) | slow_on_target)
        .filter(plans__isnull=True)
        .distinct()
        .select_related("target")
        .order_by("pk")
    )


def explain_slow_queries(limit: int = SLOW_BATCH) -> list[int]:
    """Explain the new slow shapes (see the module docstring); the new plans' ids."""
    # One connection per database for all of its shapes.
    by_dsn: dict[str, list[QueryShape]] = {}
    chosen = 0
    for shape in unplanned_slow_shapes():
        if chosen >= limit:
            break
        if _attempts(shape) >= MAX_EXPLAIN_ATTEMPTS:
            continue
        dsn = _dsn_of(shape.target)
        if dsn is not None:  # None: our own database is no PostgreSQL, nothing to plan on
            by_dsn.setdefault(dsn, []).append(shape)
            chosen += 1
    stored: list[int] = []
    for dsn, shapes in by_dsn.items():
        stored.extend(_explain_on(dsn, shapes))
    return stored


def _dsn_of(target: QueryTarget | None) -> str | None:
    if target is not None:
        return target.dsn
    return services.own_database_dsn() if settings.DATABASE_IS_POSTGRES else None


def _explain_on(dsn: str, shapes: list[QueryShape]) -> list[int]:
    try:
        conn = targets.connect(dsn)
    except targets.TargetError as exc:  # already redacted
        for shape in shapes:
            _failed(shape, str(exc), final=False)
        return []
    stored = []
    with conn:
        for shape in shapes:
            plan = _explain_one(conn, dsn, shape)
            if plan is not None:
                stored.append(plan.pk)
    return stored


def _explain_one(conn: psycopg.Connection[Any], dsn: str, shape: QueryShape) -> QueryPlan | None:
    try:
        return _plan(conn, shape, PlanSource.SLOW)
    except explain.ExplainRefused as exc:
        _failed(shape, str(exc), final=True)
    except psycopg.Error as exc:
        _failed(shape, targets.describe_error(exc, dsn, "EXPLAIN failed"), final=False)
    return None


def _plan(conn: psycopg.Connection[Any], shape: QueryShape, source: str) -> QueryPlan:
    """EXPLAIN `shape` with the kept parameters of its latest slow execution that has
    them, else its generic plan, and store it."""
    example = (
        SlowQuery.objects.filter(shape=shape, params__isnull=False)
        .order_by("-captured_at", "-pk")
        .first()
    )
    latest = example or shape.slow_queries.order_by("-captured_at", "-pk").first()
    timeout_s = settings.QUERYOPT_EXPLAIN_TIMEOUT_S
    if example is not None and isinstance(example.params, list):
        result = explain.explain(conn, example.sql, example.params, timeout_s=timeout_s)
    else:
        result = explain.explain(conn, shape.query_text, timeout_s=timeout_s)
    return store_plan(shape, result, source, run=latest.run if latest else None)


def explain_shape(shape: QueryShape) -> QueryPlan:
    """Plan `shape` now, on demand (as the slow-query beat does), and store the plan.

    Raises targets.TargetError (redacted) when its database cannot be reached or planning
    fails, explain.ExplainRefused when a rule forbids it.
    """
    dsn = _dsn_of(shape.target)
    if dsn is None:
        raise targets.TargetError("this app's own database is not PostgreSQL: nothing to plan")
    with targets.connect(dsn) as conn:
        try:
            return _plan(conn, shape, PlanSource.ON_DEMAND)
        except psycopg.Error as exc:
            raise targets.TargetError(targets.describe_error(exc, dsn, "EXPLAIN failed")) from None


def explain_on_request(shape_id: int) -> int | None:
    """Plan one shape asked for from its page (in a worker task); the plan's id, or None
    when it is gone or could not be planned: the reason (redacted) is stored on it for the
    page, and logged."""
    matching = QueryShape.objects.select_related("target").filter(pk=shape_id)
    found = matching.first()
    if found is None:
        return None
    try:
        plan = explain_shape(found)
    except (targets.TargetError, explain.ExplainRefused) as exc:
        dsn = _dsn_of(found.target) or ""
        problem = redact(str(exc), dsn) if dsn else str(exc)
        log.warning("queryopt: not planned query shape %s: %s", found.pk, problem)
        matching.update(explain_problem=problem[:2000])
        return None
    matching.update(explain_problem="")
    return plan.pk


def _attempts_key(shape: QueryShape) -> str:
    return f"queryopt:explain-failures:{shape.pk}"


def _attempts(shape: QueryShape) -> int:
    try:
        return int(cache.get(_attempts_key(shape), 0))
    except Exception:  # noqa: BLE001 - a cache outage must not stop the plans
        return 0


def _failed(shape: QueryShape, message: str, *, final: bool) -> None:
    attempts = MAX_EXPLAIN_ATTEMPTS if final else _attempts(shape) + 1
    dsn = shape.target.dsn if shape.target else ""
    log.warning(
        "queryopt: cannot explain query shape %s (attempt %d of %d): %s",
        shape.pk,
        attempts,
        MAX_EXPLAIN_ATTEMPTS,
        redact(message, dsn) if dsn else message,
    )
    try:
        cache.set(_attempts_key(shape), attempts, ATTEMPTS_TTL_S)
    except Exception:  # noqa: BLE001 - logged above; the next beat tries again
        log.warning("queryopt: cannot count the failed EXPLAIN of query shape %s", shape.pk)
