"""Stored plans: each EXPLAIN of a fingerprint becomes a QueryPlan row with its plan hash, so a
plan change between runs shows as a new hash; and the plan of every new slow fingerprint, taken
by a beat task (tasks.explain_slow_queries).

Slow means a SlowQuery row of the app's own capture, or a snapshot window whose mean time
reached the target's slow threshold. A slow fingerprint is explained with the parameters of one
of its SlowQuery rows when they were kept, else as PostgreSQL's generic plan of its normalised
text. A fingerprint that cannot be
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
# Failed attempts are counted in the cache; after this long a fingerprint may be tried anew.
ATTEMPTS_TTL_S = 7 * 86400
# Bounds the work of one beat: the rest waits for the next one.
SLOW_BATCH = 50


def store_plan(
    fingerprint: QueryShape,
    result: dict[str, Any],
    source: str,
    run: Any = None,
) -> QueryPlan:
    """A QueryPlan of `fingerprint` from an explain.explain / explain_analyze result."""
    document = result["plan"]
    return QueryPlan.objects.create(
        fingerprint=fingerprint,
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
    """The plan stored for the same fingerprint just before `plan`."""
    earlier = QueryPlan.objects.filter(fingerprint_id=plan.fingerprint_id, pk__lt=plan.pk)
    return earlier.order_by("-captured_at", "-pk").first()


def plan_changed(plan: QueryPlan) -> bool | None:
    """Whether `plan`'s hash differs from the previous plan's; None for a first plan."""
    previous = previous_plan(plan)
    return None if previous is None else previous.plan_hash != plan.plan_hash


def plan_history(fingerprint: QueryShape) -> list[dict[str, Any]]:
    """The distinct plan hashes of `fingerprint`, oldest first: {"plan_hash", "first_seen",
    "last_seen", "count"} each (three queries' worth of rows in one)."""
    rows = (
        QueryPlan.objects.filter(fingerprint=fingerprint)
        .values("plan_hash")
        .annotate(first_seen=Min("captured_at"), last_seen=Max("captured_at"), count=Count("pk"))
        .order_by("first_seen", "plan_hash")
    )
    return list(rows)


def statement_fingerprint(target: QueryTarget, sql: str) -> QueryShape:
    """The target's fingerprint of `sql`, created when the query was never seen there."""
    normalized = normalize_query(sql)
    fingerprint, _ = QueryShape.objects.get_or_create(
        target=target, fingerprint=normalized.fingerprint, defaults={"query_text": normalized.text}
    )
    return fingerprint


def unplanned_slow_fingerprints() -> QuerySet[QueryShape]:
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
    """Explain the new slow fingerprints (see the module docstring); the new plans' ids."""
    # One connection per database for all of its fingerprints.
    by_dsn: dict[str, list[QueryShape]] = {}
    chosen = 0
    for fingerprint in unplanned_slow_fingerprints():
        if chosen >= limit:
            break
        if _attempts(fingerprint) >= MAX_EXPLAIN_ATTEMPTS:
            continue
        dsn = _dsn_of(fingerprint.target)
        if dsn is not None:  # None: our own database is no PostgreSQL, nothing to plan on
            by_dsn.setdefault(dsn, []).append(fingerprint)
            chosen += 1
    stored: list[int] = []
    for dsn, fingerprints in by_dsn.items():
        stored.extend(_explain_on(dsn, fingerprints))
    return stored


def _dsn_of(target: QueryTarget | None) -> str | None:
    if target is not None:
        return target.dsn
    return services.own_database_dsn() if settings.DATABASE_IS_POSTGRES else None


def _explain_on(dsn: str, fingerprints: list[QueryShape]) -> list[int]:
    try:
        conn = targets.connect(dsn)
    except targets.TargetError as exc:  # already redacted
        for fingerprint in fingerprints:
            _failed(fingerprint, str(exc), final=False)
        return []
    stored = []
    with conn:
        for fingerprint in fingerprints:
            plan = _explain_one(conn, dsn, fingerprint)
            if plan is not None:
                stored.append(plan.pk)
    return stored


def _explain_one(
    conn: psycopg.Connection[Any], dsn: str, fingerprint: QueryShape
) -> QueryPlan | None:
    try:
        return _plan(conn, fingerprint, PlanSource.SLOW)
    except explain.ExplainRefused as exc:
        _failed(fingerprint, str(exc), final=True)
    except psycopg.Error as exc:
        _failed(fingerprint, targets.describe_error(exc, dsn, "EXPLAIN failed"), final=False)
    return None


def _plan(conn: psycopg.Connection[Any], fingerprint: QueryShape, source: str) -> QueryPlan:
    """EXPLAIN `fingerprint` with the kept parameters of its latest slow execution that has
    them, else its generic plan, and store it."""
    example = (
        SlowQuery.objects.filter(fingerprint=fingerprint, params__isnull=False)
        .order_by("-captured_at", "-pk")
        .first()
    )
    latest = example or fingerprint.slow_queries.order_by("-captured_at", "-pk").first()
    timeout_s = settings.QUERYOPT_EXPLAIN_TIMEOUT_S
    if example is not None and isinstance(example.params, list):
        result = explain.explain(conn, example.sql, example.params, timeout_s=timeout_s)
    else:
        result = explain.explain(conn, fingerprint.query_text, timeout_s=timeout_s)
    return store_plan(fingerprint, result, source, run=latest.run if latest else None)


def explain_fingerprint(fingerprint: QueryShape) -> QueryPlan:
    """Plan `fingerprint` now, on demand (as the slow-query beat does), and store the plan.

    Raises targets.TargetError (redacted) when its database cannot be reached or planning
    fails, explain.ExplainRefused when a rule forbids it.
    """
    dsn = _dsn_of(fingerprint.target)
    if dsn is None:
        raise targets.TargetError("this app's own database is not PostgreSQL: nothing to plan")
    with targets.connect(dsn) as conn:
        try:
            return _plan(conn, fingerprint, PlanSource.ON_DEMAND)
        except psycopg.Error as exc:
            raise targets.TargetError(targets.describe_error(exc, dsn, "EXPLAIN failed")) from None


def explain_on_request(fingerprint_id: int) -> int | None:
    """Plan one fingerprint asked for from its page (in a worker task); the plan's id, or None
    when it is gone or could not be planned: the reason (redacted) is stored on it for the
    page, and logged."""
    fingerprint = QueryShape.objects.select_related("target").filter(pk=fingerprint_id)
    found = fingerprint.first()
    if found is None:
        return None
    try:
        plan = explain_fingerprint(found)
    except (targets.TargetError, explain.ExplainRefused) as exc:
        dsn = _dsn_of(found.target) or ""
        problem = redact(str(exc), dsn) if dsn else str(exc)
        log.warning("queryopt: not planned fingerprint %s: %s", found.pk, problem)
        fingerprint.update(explain_problem=problem[:2000])
        return None
    fingerprint.update(explain_problem="")
    return plan.pk


def _attempts_key(fingerprint: QueryShape) -> str:
    return f"queryopt:explain-failures:{fingerprint.pk}"


def _attempts(fingerprint: QueryShape) -> int:
    try:
        return int(cache.get(_attempts_key(fingerprint), 0))
    except Exception:  # noqa: BLE001 - a cache outage must not stop the plans
        return 0


def _failed(fingerprint: QueryShape, message: str, *, final: bool) -> None:
    attempts = MAX_EXPLAIN_ATTEMPTS if final else _attempts(fingerprint) + 1
    dsn = fingerprint.target.dsn if fingerprint.target else ""
    log.warning(
        "queryopt: cannot explain fingerprint %s (attempt %d of %d): %s",
        fingerprint.pk,
        attempts,
        MAX_EXPLAIN_ATTEMPTS,
        redact(message, dsn) if dsn else message,
    )
    try:
        cache.set(_attempts_key(fingerprint), attempts, ATTEMPTS_TTL_S)
    except Exception:  # noqa: BLE001 - logged above; the next beat tries again
        log.warning("queryopt: cannot count the failed EXPLAIN of fingerprint %s", fingerprint.pk)
