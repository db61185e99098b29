"""Unused and duplicate indexes, and the index that covers given columns, on a scratch schema
(queryopt.indexes takes a psycopg connection: no Django database involved)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from queryopt import indexes

SCHEMA = [
    "CREATE TABLE idx_orders (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, "
    "customer integer NOT NULL, placed date NOT NULL, total numeric NOT NULL)",
    "CREATE INDEX idx_orders_customer ON idx_orders (customer)",
    "CREATE INDEX idx_orders_customer_placed ON idx_orders (customer, placed)",
    "CREATE INDEX idx_orders_customer_placed_2 ON idx_orders (customer, placed)",
    "CREATE INDEX idx_orders_placed_desc ON idx_orders (placed DESC)",
    "CREATE INDEX idx_orders_placed ON idx_orders (placed)",
    "CREATE INDEX idx_orders_code ON idx_orders (code)",
    "CREATE INDEX idx_orders_customer_hash ON idx_orders USING hash (customer)",
    "CREATE UNIQUE INDEX idx_orders_total_unique ON idx_orders (total, id)",
    "CREATE INDEX idx_orders_total ON idx_orders (total)",
    "INSERT INTO idx_orders SELECT g, 'o' || g, g % 50, date '2026-01-01' + g % 300, g "
    "FROM generate_series(1, 2000) g",
    "ANALYZE idx_orders",
]


@pytest.fixture
def orders(pg: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    for statement in SCHEMA:
        pg.execute(statement)
    try:
        yield pg
    finally:
        pg.execute("DROP TABLE idx_orders")


def scan_with(scratch_dsn: str, sql: str) -> None:
    """Run `sql` with sequential scans off, then flush the backend's statistics (idx_scan):
    PostgreSQL 15 does so before it answers the next statement."""
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        conn.execute(sql).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")


def test_it_lists_never_scanned_indexes_but_never_a_primary_key_or_unique_one(
    orders: psycopg.Connection[Any], scratch_dsn: str
) -> None:
    scan_with(scratch_dsn, "SELECT id FROM idx_orders WHERE placed = '2026-02-01'")
    scan_with(scratch_dsn, "SELECT id FROM idx_orders WHERE id = 5")
    unused = {r["index"]: r for r in indexes.unused_indexes(orders) if r["table"] == "idx_orders"}
    used = {"idx_orders_placed", "idx_orders_placed_desc"} & set(unused)
    assert len(used) == 1  # the planner took one of the two for `placed`
    assert set(unused) - used == {
        "idx_orders_customer",
        "idx_orders_customer_placed",
        "idx_orders_customer_placed_2",
        "idx_orders_code",
        "idx_orders_customer_hash",
        "idx_orders_total",
    }
    row = unused["idx_orders_customer"]
    assert (row["schema"], row["table"]) == ("public", "idx_orders")
    assert row["size_bytes"] > 0
    assert row["definition"].startswith("CREATE INDEX idx_orders_customer ON public.idx_orders")
    assert row["statement"] == 'DROP INDEX CONCURRENTLY "public"."idx_orders_customer"'
    assert row["stats_reset"] == indexes.stats_reset(orders)


def test_it_lists_indexes_another_one_of_the_same_method_leads_with(
    orders: psycopg.Connection[Any],
) -> None:
    found = {r["index"]: r for r in indexes.duplicate_indexes(orders) if r["table"] == "idx_orders"}
    assert {name: row["covered_by"] for name, row in found.items()} == {
        "idx_orders_customer": "idx_orders_customer_placed",
        "idx_orders_customer_placed_2": "idx_orders_customer_placed",
        # A plain index on what a unique constraint already indexes.
        "idx_orders_code": "idx_orders_code_key",
        "idx_orders_total": "idx_orders_total_unique",
    }
    assert found["idx_orders_customer_placed_2"]["identical"] is True
    assert found["idx_orders_customer"]["identical"] is False
    # Never listed: a constraint's index, the unique index a wider one cannot replace, another
    # order (DESC) or another method (hash).


def test_it_finds_the_index_that_leads_with_the_given_columns(
    orders: psycopg.Connection[Any],
) -> None:
    covering = indexes.existing_index_covering
    assert covering(orders, "idx_orders", ["customer", "placed"]) == "idx_orders_customer_placed"
    assert covering(orders, "public.idx_orders", ["customer"]) == "idx_orders_customer"
    assert covering(orders, "idx_orders", ["id"]) == "idx_orders_pkey"
    assert covering(orders, "idx_orders", ["placed", "customer"]) is None
    assert covering(orders, "no_such_table", ["id"]) is None
