"""Connections to target databases and the extensions the optimizer needs on them."""

from __future__ import annotations

import psycopg
from psycopg import sql

from queryopt.dsn import mask_dsn, redact

APPLICATION_NAME = "offgridperf-queryopt"
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 5000
# Extensions that must be loaded at server start, not only created.
PRELOADED = {"pg_stat_statements"}
PACKAGES = {"pg_stat_statements": "postgresql-contrib", "hypopg": "postgresql-<version>-hypopg"}


class TargetError(Exception):
    """A target that cannot be used; the message is already free of the DSN's password."""


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection with short timeouts (a failed statement aborts nothing)."""
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
    except Exception as exc:  # noqa: BLE001 - every cause becomes one redacted line
        raise TargetError(describe_error(exc, dsn, f"cannot connect to {mask_dsn(dsn)}")) from None


def describe_error(exc: BaseException, dsn: str, context: str) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return redact(f"{context}: {detail}", dsn)


def preload_message(name: str) -> str:
    return (
        f"{name} is not preloaded: set shared_preload_libraries = '{name}' in postgresql.conf "
        "(keep any libraries already listed there) and restart PostgreSQL"
    )


def ensure_extension(conn: psycopg.Connection, name: str) -> str | None:
    """None when extension `name` is usable on `conn`'s database (creating it when the role
    may), else a message saying exactly what to install, set or run."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [name]).fetchone():
        problem = _create_extension(conn, name)
        if problem:
            return problem
    if name in PRELOADED and not _is_loaded(conn, name):
        return preload_message(name)
    return None


def _create_extension(conn: psycopg.Connection, name: str) -> str | None:
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", [name]).fetchone():
        package = PACKAGES.get(name, name)
        return f"{name} is not installed on the database server: install the {package} package"
    statement = sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return (
            f"{name} is not created in database {conn.info.dbname!r} and this role may not "
            f"create it: run `CREATE EXTENSION IF NOT EXISTS {name};` in that database as a "
            "superuser"
        )
    return None


def _is_loaded(conn: psycopg.Connection, name: str) -> bool:
    # shared_preload_libraries is readable by superusers only: probe the view instead, which
    # raises "must be loaded via shared_preload_libraries" when it is not.
    try:
        conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 0").format(sql.Identifier(name)))
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return False
    return True
