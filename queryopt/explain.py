"""EXPLAIN and a guarded EXPLAIN ANALYZE on a psycopg 3 connection to any PostgreSQL database.

No Django: the caller opens the connection (to a target, or to our own database). Every plan
is taken inside a transaction that is rolled back, so nothing the statement might do stays.

- SQL may use $n placeholders (as pg_stat_statements shows it) or psycopg's %s (as Django's
  cursor sees it).
- `explain` plans without running. SQL with $n placeholders and no values gets PostgreSQL's
  generic plan (PREPARE, then EXPLAIN EXECUTE with NULLs under force_generic_plan), the plan a
  prepared statement would use for any value.
- `explain_analyze` runs the statement, so it accepts only a single plain SELECT, in a READ
  ONLY transaction with a statement and a lock timeout; anything else raises `ExplainRefused`
  naming the rule.
- `plan_hash` is stable over costs and row counts: it changes only when the plan's shape does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql

from queryopt.fingerprints import pg, postgres_text, walk

DEFAULT_TIMEOUT_S = 5.0
# A plan waiting on a lock is not what the user asked to measure: give up quickly.
DEFAULT_LOCK_TIMEOUT_S = 1.0
# pglast.ast node types of the statements that write (named: pglast is imported on first use).
MODIFYING_STATEMENTS = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
# The plan keys that make a plan's shape; costs, rows, widths and timings are left out.
SHAPE_KEYS = (
    "Node Type",
    "Parent Relationship",
    "Join Type",
    "Strategy",
    "Schema",
    "Relation Name",
    "Index Name",
    "CTE Name",
    "Function Name",
    "Scan Direction",
    "Subplan Name",
)


class ExplainRefused(ValueError):
    """The statement breaks one of the rules for planning or running it; `rule` names which."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


def explain(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """The EXPLAIN (FORMAT JSON) plan of one statement, without running it.

    Returns {"plan": the EXPLAIN document (its "Plan" key is the root node), "plan_hash",
    "generic": True when placeholders were planned without values, "analyzed": False}.
    """
    if params is None:
        sql = postgres_text(sql) or sql  # psycopg's %s placeholders become $n
    single_statement(sql)
    return _run(conn, sql, params, "FORMAT JSON", timeout_s, read_only=False)


def explain_analyze(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of a single read-only SELECT, rolled back.

    Raises `ExplainRefused` for anything but one SELECT without locking clause, SELECT INTO or
    data-modifying CTE, and for placeholders without values; psycopg.errors.QueryCanceled when
    the statement timeout stops it.
    """
    if params is None:
        sql = postgres_text(sql) or sql
    check_analyzable(sql)
    if params is None and placeholder_count(sql):
        raise ExplainRefused("values", "EXPLAIN ANALYZE needs a value for every $n placeholder")
    return _run(conn, sql, params, "ANALYZE, BUFFERS, FORMAT JSON", timeout_s, read_only=True)


def single_statement(sql: str) -> Any:
    """The one parsed statement of `sql`; ExplainRefused when it is not exactly one."""
    try:
        # SQL with psycopg placeholders (and values passed along) parses in its $n form.
        statements = pg.parser.parse_sql(postgres_text(sql) or sql)
    except pg.parser.ParseError as exc:
        raise ExplainRefused("syntax", f"PostgreSQL cannot parse the statement ({exc})") from exc
    if len(statements) != 1:
        raise ExplainRefused("single statement", f"expected one statement, got {len(statements)}")
    return statements[0].stmt


def check_analyzable(sql: str) -> None:
    """Raise ExplainRefused unless `sql` is one SELECT that cannot change or lock data."""
    stmt = single_statement(sql)
    if not isinstance(stmt, pg.ast.SelectStmt):
        kind = type(stmt).__name__.removesuffix("Stmt").upper()
        raise ExplainRefused("select only", f"EXPLAIN ANALYZE runs only a SELECT, not {kind}")
    modifying = tuple(getattr(pg.ast, name) for name in MODIFYING_STATEMENTS)
    for node in walk(stmt):
        if isinstance(node, modifying):
            raise ExplainRefused("no data-modifying CTE", "a WITH clause changes data")
        if isinstance(node, pg.ast.SelectStmt) and node.lockingClause:
            raise ExplainRefused("no locking clause", "FOR UPDATE/SHARE takes row locks")
        if isinstance(node, pg.ast.SelectStmt) and node.intoClause:
            raise ExplainRefused("no SELECT INTO", "SELECT INTO creates a table")


def placeholder_count(sql: str) -> int:
    """The highest $n placeholder number in `sql` (0 when there is none)."""
    return max(
        (int(sql[t.start + 1 : t.end + 1]) for t in pg.parser.scan(sql) if t.name == "PARAM"),
        default=0,
    )


def plan_hash(document: dict[str, Any]) -> str:
    """A 16-character hash of the plan's node types, relations, indexes and join structure."""
    shape = json.dumps(_shape(document["Plan"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(shape.encode(), usedforsecurity=False).hexdigest()[:16]


def _shape(node: dict[str, Any]) -> list[Any]:
    own = {key: node[key] for key in SHAPE_KEYS if key in node}
    return [own, [_shape(child) for child in node.get("Plans", ())]]


def _run(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None,
    options: str,
    timeout_s: float,
    read_only: bool,
) -> dict[str, Any]:
    if read_only and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # READ ONLY can only be set at the start of a transaction of our own.
        raise ExplainRefused("own transaction", "the connection is inside a transaction")
    placeholders = placeholder_count(sql)
    generic = placeholders > 0 and params is None
    with conn.transaction(force_rollback=True):
        if read_only:
            conn.execute("SET TRANSACTION READ ONLY")
        _set_local(conn, "statement_timeout", f"{int(timeout_s * 1000)}ms")
        _set_local(conn, "lock_timeout", f"{int(DEFAULT_LOCK_TIMEOUT_S * 1000)}ms")
        if placeholders:
            document = _explain_prepared(conn, sql, params, placeholders, options, generic)
        else:
            document = _fetch_plan(conn, f"EXPLAIN ({options}) {sql}", params)
    return {
        "plan": document,
        "plan_hash": plan_hash(document),
        "generic": generic,
        "analyzed": "ANALYZE" in options,
    }


def _set_local(conn: psycopg.Connection[Any], name: str, value: str) -> None:
    conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _explain_prepared(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None,
    placeholders: int,
    options: str,
    generic: bool,
) -> dict[str, Any]:
    # PREPARE is not transactional: the statement is deallocated explicitly, after a savepoint
    # has rolled back whatever error EXPLAIN raised.
    name = pgsql.Identifier(f"queryopt_{uuid.uuid4().hex}")
    values = [None] * placeholders if generic else list(params or ())
    if generic:
        _set_local(conn, "plan_cache_mode", "force_generic_plan")
    conn.execute(pgsql.SQL("PREPARE {} AS {}").format(name, pgsql.SQL(sql)))  # type: ignore[arg-type]
    try:
        with conn.transaction():
            arguments = pgsql.SQL(", ").join(pgsql.Literal(value) for value in values)
            query = pgsql.SQL("EXPLAIN ({}) EXECUTE {}({})").format(
                pgsql.SQL(options), name, arguments
            )
            return _fetch_plan(conn, query.as_string(conn), None)
    finally:
        conn.execute(pgsql.SQL("DEALLOCATE {}").format(name))


def _fetch_plan(
    conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None
) -> dict[str, Any]:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    document = row[0] if row else None
    if isinstance(document, str):  # a connection without the json loader
        document = json.loads(document)
    return document[0]
