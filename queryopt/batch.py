"""Batched execution: many rows of one statement, in batches, with a report per batch.

Pure psycopg 3 (no Django), so it works on any PostgreSQL connection.

- `execute_batches(conn, sql, rows)` runs one statement per row with `cursor.executemany`
  inside `conn.pipeline()`: a batch of 1,000 rows costs one round trip, not 1,000.
- `copy_rows(conn, table, columns, rows)` inserts with `COPY table (columns) FROM STDIN`.

Each batch is its own transaction (`conn.transaction()`): on an idle connection that is
BEGIN ... COMMIT (or, for a COPY on an autocommit connection, the statement's own implicit
transaction), so a later failure never undoes an earlier batch; when the caller already
holds a transaction (Django's `atomic`), it is a SAVEPOINT, so a failing batch rolls back
alone and the caller decides what the whole becomes.

A failing batch is reported with its row range (0-based indexes into `rows`) and the
server's message. Like pgloader and k6, the default is to carry on with the next batch and
report every failure at the end; `stop_on_error=True` stops at the first failed batch
instead (the batches before it are kept either way, the rows after it are not read).

Example::

    with psycopg.connect(dsn, autocommit=True) as conn:
        report = copy_rows(conn, "readings", ["id", "value"], ((i, i * 2) for i in range(10_000)))
        print(report.ok_rows, report.rows_per_s, report.failed_batches)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import psycopg
from psycopg import pq
from psycopg import sql as pgsql

DEFAULT_BATCH_SIZE = 1000
MAX_ERROR_CHARS = 500  # one server message, not a dump of the failing row's values
# COPY's error context names the line of the data that failed: "COPY t, line 501: ...".
COPY_LINE = re.compile(r"\bline (\d+)\b")

Row = Sequence[Any]


@dataclass(frozen=True)
class FailedBatch:
    """A batch that was rolled back: rows `first`..`last` (0-based, inclusive)."""

    first: int
    last: int
    error: str
    row: int | None = None  # the failing row's index, when the server names it (COPY does)


@dataclass
class BatchReport:
    """What a batched run did: every row read is either in `ok_rows` or in a failed batch."""

    rows: int = 0
    batches: int = 0
    ok_rows: int = 0
    failed_batches: list[FailedBatch] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # stop_on_error ended the run at a failed batch

    @property
    def failed_rows(self) -> int:
        return sum(batch.last - batch.first + 1 for batch in self.failed_batches)

    @property
    def rows_per_s(self) -> float:
        """Rows stored per second of the whole run (0.0 when nothing was timed)."""
        return self.ok_rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "batches": self.batches,
            "ok_rows": self.ok_rows,
            "failed_rows": self.failed_rows,
            "failed_batches": [
                {"first": f.first, "last": f.last, "row": f.row, "error": f.error}
                for f in self.failed_batches
            ],
            "seconds": self.seconds,
            "rows_per_s": self.rows_per_s,
            "stopped": self.stopped,
        }


def execute_batches(
    conn: psycopg.Connection[Any],
    sql: str | bytes | pgsql.Composable,
    rows: Iterable[Row],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    stop_on_error: bool = False,
) -> BatchReport:
    """Run `sql` once per row of parameters, `batch_size` rows per pipelined transaction."""
    _check_batch_size(batch_size)
    if isinstance(sql, str | bytes) and not sql.strip():
        raise ValueError("sql: must be a statement, got an empty string")

    def run(chunk: list[Row]) -> None:
        with conn.pipeline(), conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(sql, chunk)

    return _run_batches(rows, batch_size, stop_on_error, run)


def copy_rows(
    conn: psycopg.Connection[Any],
    table: str | Sequence[str],
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    stop_on_error: bool = False,
    binary: bool = True,
) -> BatchReport:
    """Insert rows with COPY FROM STDIN, `batch_size` rows per transaction.

    `table` is a name, or a sequence of names for a qualified one (("schema", "table")); it
    and the columns are quoted as identifiers, never pasted into the SQL.

    Binary COPY by default, typed from the table's own columns: values must be of their
    column's Python type (int for integers, Decimal or float for numeric, date, str...).
    `binary=False`, or a column type without a binary dumper, sends text the server parses.
    """
    _check_batch_size(batch_size)
    statement = copy_statement(table, columns)
    types = _binary_types(conn, table, columns) if binary else None
    if types is not None:
        statement = pgsql.SQL("{} (FORMAT BINARY)").format(statement)

    def run(chunk: list[Row]) -> None:
        with _own_transaction(conn), conn.cursor() as cursor, cursor.copy(statement) as copy:
            if types is not None:
                copy.set_types(types)
            for row in chunk:
                copy.write_row(row)

    return _run_batches(rows, batch_size, stop_on_error, run)


def _own_transaction(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """A transaction block for one statement-long batch; none on an idle autocommit
    connection, where the single COPY is already its own transaction (two round trips,
    BEGIN and COMMIT, fewer per batch)."""
    if conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
        return nullcontext()
    return conn.transaction()


def _binary_types(
    conn: psycopg.Connection[Any], table: str | Sequence[str], columns: Sequence[str]
) -> list[int] | None:
    """The columns' type OIDs when psycopg can dump every one in binary, else None (text).

    Binary COPY spares the server parsing every value (about twice the rows/s for numbers and
    timestamps), but an enum or other custom type has no binary dumper.
    """
    names = [table] if isinstance(table, str) else list(table)
    probe = pgsql.SQL("SELECT {} FROM {} WHERE false").format(
        pgsql.SQL(", ").join(map(pgsql.Identifier, columns)), pgsql.Identifier(*names)
    )
    # In a transaction block of its own: on an idle connection the probe must not leave a
    # transaction open, or every batch after it would become a savepoint nobody commits.
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(probe)
        oids = [column.type_code for column in cursor.description or ()]
    try:
        for oid in oids:
            conn.adapters.get_dumper_by_oid(oid, pq.Format.BINARY)
    except psycopg.ProgrammingError:
        return None
    return oids


def copy_statement(table: str | Sequence[str], columns: Sequence[str]) -> pgsql.Composed:
    """`COPY "table" ("a", "b") FROM STDIN`, identifiers quoted."""
    names = [table] if isinstance(table, str) else list(table)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError("table: must be a non-empty name (or a sequence of non-empty names)")
    if isinstance(columns, str) or not columns:
        raise ValueError("columns: must be a non-empty list of column names")
    if not all(isinstance(c, str) and c for c in columns):
        raise ValueError("columns: every column name must be a non-empty string")
    return pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(*names), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    )


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be a whole number of at least 1, got {batch_size!r}")


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _run_batches(
    rows: Iterable[Row],
    batch_size: int,
    stop_on_error: bool,
    run: Any,
) -> BatchReport:
    report = BatchReport()
    started = time.perf_counter()
    for chunk in _chunks(rows, batch_size):
        first = report.rows
        report.rows += len(chunk)
        report.batches += 1
        try:
            run(chunk)
        except psycopg.Error as exc:
            report.failed_batches.append(_failure(first, len(chunk), exc))
            if stop_on_error:
                report.stopped = True
                break
        else:
            report.ok_rows += len(chunk)
    report.seconds = time.perf_counter() - started
    return report


def _failure(first: int, count: int, exc: psycopg.Error) -> FailedBatch:
    diag = exc.diag
    message = (diag.message_primary or str(exc) or type(exc).__name__).strip()
    line = COPY_LINE.search(diag.context or "")
    row = first + int(line.group(1)) - 1 if line and int(line.group(1)) <= count else None
    return FailedBatch(first, first + count - 1, message[:MAX_ERROR_CHARS], row)
