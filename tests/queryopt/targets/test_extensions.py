from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from queryopt import targets
from tests.queryopt.targets.conftest import run_sql, server_dsn


@pytest.fixture
def bare_database(target_database: str) -> Iterator[str]:
    """A database where no extension is created, and a role that may not create one."""
    name, role = f"{target_database}_bare", f"offgridperf_qo_role_{os.getpid()}"
    run_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    run_sql(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield name
    finally:
        run_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        run_sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def role_dsn(database: str) -> str:
    return server_dsn(database, user=f"offgridperf_qo_role_{os.getpid()}")


def extensions(database: str) -> set[str]:
    with psycopg.connect(server_dsn(database)) as conn:
        return {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}


@pytest.mark.parametrize("name", ["pg_stat_statements", "hypopg"])
def test_it_says_to_run_create_extension_as_a_superuser_when_the_role_may_not(
    bare_database: str, name: str
) -> None:
    with targets.connect(role_dsn(bare_database)) as conn:
        message = targets.ensure_extension(conn, name)
    assert message is not None
    assert f"run `CREATE EXTENSION IF NOT EXISTS {name};`" in message
    assert "as a superuser" in message
    assert repr(bare_database) in message
    assert name not in extensions(bare_database)


@pytest.mark.parametrize("name", ["pg_stat_statements", "hypopg"])
def test_it_creates_the_extension_itself_when_the_role_may(bare_database: str, name: str) -> None:
    with targets.connect(server_dsn(bare_database)) as conn:
        assert targets.ensure_extension(conn, name) is None
        assert targets.ensure_extension(conn, name) is None  # already there: still fine
    assert name in extensions(bare_database)


def test_it_says_what_to_set_when_pg_stat_statements_is_not_preloaded() -> None:
    # The test server preloads it (make test sees to that), so only the message is checked.
    assert targets.preload_message("pg_stat_statements") == (
        "pg_stat_statements is not preloaded: set shared_preload_libraries = "
        "'pg_stat_statements' in postgresql.conf (keep any libraries already listed there) "
        "and restart PostgreSQL"
    )


def test_it_says_which_package_to_install_for_an_unknown_extension(bare_database: str) -> None:
    with targets.connect(server_dsn(bare_database)) as conn:
        message = targets.ensure_extension(conn, "no_such_extension")
    assert message == (
        "no_such_extension is not installed on the database server: install the "
        "no_such_extension package"
    )


def test_it_connects_with_its_application_name_and_a_statement_timeout(target_dsn: str) -> None:
    with targets.connect(target_dsn) as conn:
        name, timeout = conn.execute(
            "SELECT current_setting('application_name'), current_setting('statement_timeout')"
        ).fetchone()
    assert name == "offgridperf-queryopt"
    assert timeout == "5s"
