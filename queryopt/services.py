"""Coordination for pages, the admin and the CLI: registering targets, checking them, taking
snapshots. Connections live in targets.py, the deltas in snapshots.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from loadtests.models import LoadTestRun
from queryopt import indexusage, snapshots, targets
from queryopt.dsn import DsnRefused, connection_params, redact, with_password_of
from queryopt.fingerprints import normalize_query
from queryopt.models import IndexSurvey, QueryShape, QueryTarget, SnapshotReason, StatementSnapshot

# A refresh asked for within this many seconds, and not done yet, is not asked for again:
# pressing the button many times costs the target one reading.
SURVEY_PENDING_S = 60

__all__ = [
    "QueryTarget",
    "TargetProblem",
    "add_target",
    "change_target_dsn",
    "check_target",
    "index_report",
    "request_index_survey",
    "shape_of_run_statement",
    "take_snapshot",
]


class TargetProblem(ValueError):
    """A target that may not be registered; the message names the field and the rule."""


def dsn_problem(dsn: str) -> str | None:
    """Why `dsn` may not be a target's (redacted), or None: see queryopt.dsn's rules."""
    if not dsn.strip():
        return "dsn: give a PostgreSQL DSN, e.g. postgresql://user:password@host:5432/dbname"
    if targets.is_own_dsn(dsn):
        return None
    try:
        connection_params(dsn, targets.allowed_hosts())
    except DsnRefused as exc:
        return redact(str(exc), dsn)
    return None


def resolved_dsn(new_dsn: str, stored_dsn: str) -> str:
    """The DSN to store when `new_dsn` replaces `stored_dsn`: the stored password put back for
    the mask, only when the connection still goes where it did; TargetProblem otherwise."""
    try:
        dsn = with_password_of(new_dsn, stored_dsn)
    except DsnRefused as exc:
        raise TargetProblem(str(exc)) from None
    problem = dsn_problem(dsn)
    if problem:
        raise TargetProblem(problem)
    return dsn


def change_target_dsn(target: QueryTarget, new_dsn: str) -> QueryTarget:
    """Point `target` at `new_dsn` (see resolved_dsn); its last error goes with the old DSN."""
    target.dsn = resolved_dsn(new_dsn, target.dsn)
    target.last_error = ""
    target.save(update_fields=["dsn", "last_error", "updated_at"])
    return target


def add_target(
    name: str,
    dsn: str,
    *,
    slow_threshold_ms: int = 100,
    polling_interval_s: int = 60,
    if_missing: bool = False,
    own_database: bool = False,
) -> tuple[QueryTarget, bool]:
    """The target and whether it was created; an existing one is kept with `if_missing`."""
    existing = QueryTarget.objects.filter(name=name).first()
    if existing is not None:
        if if_missing:
            return existing, False
        raise TargetProblem(f"name: a query target named {name!r} exists (--if-missing keeps it)")
    problem = dsn_problem(dsn)
    if problem:
        raise TargetProblem(problem)
    if not name.strip():
        raise TargetProblem("name: give the target a name")
    if slow_threshold_ms < 0 or polling_interval_s < 1:
        raise TargetProblem("slow-ms must be >= 0 and the polling interval >= 1 s")
    target = QueryTarget.objects.create(
        name=name,
        dsn=dsn,
        slow_threshold_ms=slow_threshold_ms,
        polling_interval_s=polling_interval_s,
        own_database=own_database,
    )
    return target, True


def check_target(target: QueryTarget) -> str | None:
    """None when the target answers and has pg_stat_statements (created here when the role
    may), else what to do, redacted; stored in the target's last_error."""
    try:
        with targets.connect(target.dsn) as conn:
            problem = targets.ensure_extension(conn, "pg_stat_statements")
    except targets.TargetError as exc:
        problem = str(exc)
    message = redact(problem or "", target.dsn)
    QueryTarget.objects.filter(pk=target.pk).update(last_error=message)
    return message or None


def take_snapshot(
    target: QueryTarget, reason: str = SnapshotReason.MANUAL, run_id: int | None = None
) -> StatementSnapshot:
    return snapshots.take_snapshot(target, reason, run_id)


def own_database_dsn() -> str:
    return targets.own_database_dsn()


def index_report(target: QueryTarget) -> dict[str, Any]:
    """The Indexes page of `target`: see indexusage.index_report for its shape."""
    return indexusage.index_report(target)


def request_index_survey(target: QueryTarget) -> bool:
    """Note that `target`'s indexes should be read again; False when a refresh is already
    pending (asked for less than SURVEY_PENDING_S ago and not done), so that none is queued."""
    now = timezone.now()
    survey, _ = IndexSurvey.objects.get_or_create(target=target)
    if survey.refreshing and survey.requested_at > now - timedelta(seconds=SURVEY_PENDING_S):
        return False
    IndexSurvey.objects.filter(pk=survey.pk).update(requested_at=now)
    return True


def survey_indexes(target: QueryTarget) -> IndexSurvey:
    return indexusage.survey_indexes(target)


def run_statement_sql(run: LoadTestRun, agent_fingerprint: str) -> str | None:
    """The SQL of a statement the target agent counted among a step's costliest in `run`
    (`top_sql` of its steps_summary), found by the agent's own fingerprint; None if no step
    names it."""
    steps = run.steps_summary if isinstance(run.steps_summary, dict) else {}
    for stats in steps.values():
        for item in (stats.get("top_sql") or []) if isinstance(stats, dict) else []:
            if item.get("fingerprint") == agent_fingerprint and item.get("sql"):
                return str(item["sql"])
    return None


def shape_of_run_statement(run: LoadTestRun, agent_fingerprint: str) -> QueryShape | None:
    """The query shape of a statement the agent measured in `run`, created when the optimizer
    has never seen it.

    The agent fingerprints with the standard library only (it may depend on nothing but Django
    and redis-py), so its fingerprints are not the optimizer's: the statement's text is
    fingerprinted again here, as the capture middleware and pg_stat_statements snapshots do.
    The shape is looked for on the target the app's own queries are filed under (the capture's
    own-database target, or none), then on any target, newest first; a new one goes to the
    former, as the capture would file it."""
    sql = run_statement_sql(run, agent_fingerprint)
    if sql is None:
        return None
    normalized = normalize_query(sql)
    own = QueryTarget.objects.filter(own_database=True).order_by("pk").first()
    shapes = QueryShape.objects.filter(fingerprint=normalized.fingerprint)
    found = shapes.filter(target=own).first() or shapes.order_by("-last_seen_at", "pk").first()
    if found is not None:
        return found
    shape, _ = QueryShape.objects.get_or_create(
        target=own, fingerprint=normalized.fingerprint, defaults={"query_text": normalized.text}
    )
    return shape
