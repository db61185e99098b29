"""The target database of tests/queryopt/targets, and a table on it whose plans change."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.core.cache import cache

from tests.queryopt.targets.conftest import (  # noqa: F401 - fixtures
    server_dsn,
    target,
    target_database,
    target_dsn,
)

TABLE = "plan_readings"


@pytest.fixture(scope="module")
def plan_table(target_database: str) -> Iterator[str]:  # noqa: F811 - a fixture
    """50,000 analysed rows with a primary key only, dropped at the end."""
    with psycopg.connect(server_dsn(target_database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS plan_readings")
        conn.execute(
            "CREATE TABLE plan_readings (id bigint PRIMARY KEY, sensor integer NOT NULL, "
            "value double precision NOT NULL)"
        )
        conn.execute(
            "INSERT INTO plan_readings SELECT g, g % 5000, g % 100 FROM generate_series(1, 50000) g"
        )
        conn.execute("ANALYZE plan_readings")
    try:
        yield TABLE
    finally:
        with psycopg.connect(server_dsn(target_database), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS plan_readings")


@pytest.fixture(autouse=True)
def no_counted_failures() -> None:
    """Failed EXPLAIN attempts are counted in the cache by shape id, and ids start over with
    each test: only this worker's counts go (cache.clear() would flush the whole Redis
    database, and with it the counts of a test running on another worker)."""
    cache.delete_pattern("queryopt:explain-failures:*")
