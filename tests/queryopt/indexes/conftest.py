"""The target database of tests/queryopt/targets, with a table the advisor has advice for."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from queryopt import snapshots
from queryopt.models import QueryTarget, SnapshotReason
from tests.queryopt.targets.conftest import (  # noqa: F401 - fixtures
    server_dsn,
    target,
    target_database,
    target_dsn,
)

TABLE = "advised_readings"


@pytest.fixture(scope="module")
def advised_table(target_database: str) -> Iterator[str]:  # noqa: F811 - a fixture
    """100,000 analysed rows with a primary key only: sensor and site are unindexed."""
    with psycopg.connect(server_dsn(target_database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS advised_readings")
        conn.execute(
            "CREATE TABLE advised_readings (id bigint PRIMARY KEY, sensor integer NOT NULL, "
            "site integer NOT NULL, value double precision NOT NULL)"
        )
        conn.execute(
            "INSERT INTO advised_readings SELECT g, g % 5000, g % 3001, g % 100 "
            "FROM generate_series(1, 100000) g"
        )
        conn.execute("ANALYZE advised_readings")
    try:
        yield TABLE
    finally:
        with psycopg.connect(server_dsn(target_database), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS advised_readings")


def run_lookups(dsn: str, times: int, columns: tuple[str, ...] = ("sensor", "site")) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for value in range(times):
            for column in columns:
                query = sql.SQL("SELECT id, value FROM advised_readings WHERE {} = %s")
                conn.execute(query.format(sql.Identifier(column)), [value])


def window(on: QueryTarget, times: int = 5, columns: tuple[str, ...] = ("sensor", "site")) -> None:
    """A snapshot window of target `on` in which each lookup ran `times` times."""
    snapshots.take_snapshot(on, SnapshotReason.MANUAL)
    run_lookups(on.dsn, times, columns)
    snapshots.take_snapshot(on, SnapshotReason.MANUAL)
