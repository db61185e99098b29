"""Target databases for the snapshot, extension and CLI tests: `offgridperf_qo_<pid>`, a
database of their own next to the suite's (pg_stat_statements counts per database), dropped at
the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from queryopt.models import QueryTarget

PASSWORD = "s3cret-Pa55word"


def server_dsn(dbname: str = "postgres", **extra: Any) -> str:
    """A DSN on the test PostgreSQL server (the one Django's test database is on)."""
    database = settings.DATABASES["default"]
    params = {
        "host": database["HOST"] or "127.0.0.1",
        "port": database["PORT"] or 5432,
        "user": database["USER"] or "postgres",
        "dbname": dbname,
    }
    return make_conninfo("", **{**params, **extra})


def run_sql(statement: Any, dbname: str = "postgres") -> None:
    with psycopg.connect(server_dsn(dbname), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def target_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """A database of its own, with pg_stat_statements created, for the target's statements."""
    name = f"offgridperf_qo_{os.getpid()}"
    run_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    run_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        run_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def target_dsn(target_database: str) -> str:
    # The server trusts local connections: the password is only there to be kept secret.
    return server_dsn(target_database, password=PASSWORD)


@pytest.fixture
def target(db: Any, target_dsn: str) -> QueryTarget:
    return QueryTarget.objects.create(name="scratch", dsn=target_dsn)
