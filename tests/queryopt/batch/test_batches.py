"""Batched execution against the real PostgreSQL (the scratch database of tests/queryopt)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from queryopt.batch import copy_rows, execute_batches

INSERT = "INSERT INTO batch_items (id, name, qty) VALUES (%s, %s, %s)"
COLUMNS = ["id", "name", "qty"]


@pytest.fixture
def items(pg: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    pg.execute("DROP TABLE IF EXISTS batch_items")
    pg.execute("CREATE TABLE batch_items (id bigint PRIMARY KEY, name text NOT NULL, qty int)")
    yield pg
    pg.execute("DROP TABLE IF EXISTS batch_items")


def rows(count: int, bad: int | None = None) -> list[tuple[Any, ...]]:
    """`count` rows; row `bad` (0-based) breaks the NOT NULL on name."""
    return [(n, None if n == bad else f"item-{n}", n % 7) for n in range(count)]


def count(conn: psycopg.Connection[Any], where: str = "true") -> int:
    return conn.execute(f"SELECT count(*) FROM batch_items WHERE {where}").fetchone()[0]  # noqa: S608


def test_it_inserts_every_row_with_executemany_in_batches(items: Any) -> None:
    report = execute_batches(items, INSERT, rows(2500), batch_size=1000)

    assert (report.rows, report.batches, report.ok_rows) == (2500, 3, 2500)
    assert report.failed_batches == []
    assert count(items) == 2500


def test_it_inserts_every_row_with_copy_in_batches(items: Any) -> None:
    report = copy_rows(items, "batch_items", COLUMNS, iter(rows(3000)), batch_size=1000)

    assert (report.rows, report.batches, report.ok_rows) == (3000, 3, 3000)
    assert count(items) == 3000
    assert items.execute("SELECT name, qty FROM batch_items WHERE id = 2999").fetchone() == (
        "item-2999",
        2999 % 7,
    )


@pytest.mark.parametrize("writer", ["execute", "copy"])
def test_it_reports_the_failed_batch_and_keeps_the_others(items: Any, writer: str) -> None:
    data = rows(3000, bad=1500)
    if writer == "execute":
        report = execute_batches(items, INSERT, data, batch_size=1000)
    else:
        report = copy_rows(items, "batch_items", COLUMNS, data, batch_size=1000)

    assert (report.rows, report.batches, report.ok_rows, report.failed_rows) == (
        3000,
        3,
        2000,
        1000,
    )
    [failed] = report.failed_batches
    assert (failed.first, failed.last) == (1000, 1999)
    assert 'null value in column "name"' in failed.error
    assert count(items) == 2000
    assert count(items, "id BETWEEN 0 AND 999") == 1000
    assert count(items, "id BETWEEN 1000 AND 1999") == 0
    assert count(items, "id BETWEEN 2000 AND 2999") == 1000


def test_it_names_the_failing_row_of_a_copy(items: Any) -> None:
    report = copy_rows(items, "batch_items", COLUMNS, rows(3000, bad=1500), batch_size=1000)

    assert report.failed_batches[0].row == 1500


def test_it_stops_at_the_first_failed_batch_when_asked(items: Any) -> None:
    report = execute_batches(items, INSERT, rows(3000, bad=1500), stop_on_error=True)

    assert (report.rows, report.batches, report.ok_rows, report.stopped) == (2000, 2, 1000, True)
    assert count(items) == 1000


def test_it_makes_each_batch_a_savepoint_inside_the_callers_transaction(
    scratch_dsn: str, items: Any
) -> None:
    with psycopg.connect(scratch_dsn) as conn:  # not autocommit: the caller's transaction
        conn.execute("SELECT 1")
        report = copy_rows(conn, "batch_items", COLUMNS, rows(3000, bad=2500), batch_size=1000)
        assert report.ok_rows == 2000
        assert count(conn) == 2000
        conn.rollback()  # the caller decides: nothing of it stays
    assert count(items) == 0


def test_it_quotes_the_table_and_column_names(items: Any) -> None:
    items.execute('CREATE TABLE "odd ""name""" ("select" int)')
    try:
        report = copy_rows(items, 'odd "name"', ["select"], [(1,), (2,)])
        assert report.ok_rows == 2
        assert items.execute('SELECT count(*) FROM "odd ""name"""').fetchone() == (2,)
    finally:
        items.execute('DROP TABLE "odd ""name"""')


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: execute_batches(c, INSERT, [], batch_size=0), "batch_size: must be"),
        (lambda c: execute_batches(c, INSERT, [], batch_size=True), "batch_size: must be"),
        (lambda c: execute_batches(c, "  ", []), "sql: must be a statement"),
        (lambda c: copy_rows(c, "batch_items", [], []), "columns: must be a non-empty list"),
        (lambda c: copy_rows(c, "batch_items", "id", []), "columns: must be a non-empty list"),
        (lambda c: copy_rows(c, "", COLUMNS, []), "table: must be a non-empty name"),
    ],
)
def test_it_refuses_bad_arguments_naming_them(items: Any, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(items)
    assert count(items) == 0


def test_it_falls_back_to_text_copy_for_a_type_without_a_binary_dumper(items: Any) -> None:
    items.execute("DROP TYPE IF EXISTS batch_mood CASCADE")
    items.execute("CREATE TYPE batch_mood AS ENUM ('calm', 'busy')")
    items.execute("CREATE TABLE batch_moods (id int, mood batch_mood)")
    try:
        report = copy_rows(items, "batch_moods", ["id", "mood"], [(1, "calm"), (2, "busy")])
        assert report.ok_rows == 2
        assert items.execute("SELECT count(*) FROM batch_moods").fetchone() == (2,)
    finally:
        items.execute("DROP TABLE batch_moods")
        items.execute("DROP TYPE batch_mood")


def test_it_lets_the_server_parse_text_when_binary_is_off(items: Any) -> None:
    report = copy_rows(items, "batch_items", COLUMNS, [("1", "one", "7")], binary=False)

    assert report.ok_rows == 1
    assert items.execute("SELECT qty FROM batch_items").fetchone() == (7,)


def test_it_commits_each_batch_on_an_idle_connection_out_of_autocommit(
    scratch_dsn: str, items: Any
) -> None:
    with psycopg.connect(scratch_dsn) as conn:
        report = copy_rows(conn, "batch_items", COLUMNS, rows(2000, bad=1500), batch_size=1000)
        assert report.ok_rows == 1000
        conn.rollback()  # nothing left open to roll back: the good batch is committed
    assert count(items) == 1000
