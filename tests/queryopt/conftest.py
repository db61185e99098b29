"""A scratch PostgreSQL database of their own for the query optimizer's analysis tests.

The analysis modules take a psycopg connection to any database, so these tests need no Django
database: they create `offgridperf_qa_<pid>` next to the suite's and drop it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

SERVER_DSN = os.environ.get(
    "QUERYOPT_TEST_SERVER_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def scratch_dsn() -> Iterator[str]:
    name = f"offgridperf_qa_{os.getpid()}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(SERVER_DSN, dbname=name)
    finally:
        with psycopg.connect(SERVER_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg(scratch_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the scratch database."""
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def big_table(scratch_dsn: str) -> str:
    """`readings`: 200,000 analysed rows, a primary key and no other index."""
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE readings (id bigint PRIMARY KEY, sensor integer NOT NULL, "
            "site text NOT NULL, value double precision NOT NULL, taken timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO readings SELECT g, g % 5000, 'site-' || (g % 40), (g * 7919) % 1000, "
            "timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 200000) g"
        )
        conn.execute("ANALYZE readings")
    return "readings"
