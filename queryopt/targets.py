"""Connections to target databases and the extensions the optimizer needs on them.

`connect` is the one way to a target: it checks the DSN against the rules (queryopt.dsn) and
QUERYOPT_ALLOWED_HOSTS again, whatever was stored, and every failure to connect reads the same
to the user (CONNECT_FAILED) within one short timeout; the cause goes to the server log only,
so that a target's form is no port scanner."""

from __future__ import annotations

import logging
import os

import psycopg
from django.conf import settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from queryopt.dsn import DsnRefused, connection_params, mask_dsn, redact

log = logging.getLogger(__name__)

APPLICATION_NAME = "offgridperf-queryopt"
# The same for every target and every cause: a refused port and a silent one both end within it.
CONNECT_TIMEOUT_S = 3
CONNECT_FAILED = (
    "cannot connect to the target database: check its host, port, database, user and password "
    "(the cause is in the server log)"
)
STATEMENT_TIMEOUT_MS = 5000
# Extensions that must be loaded at server start, not only created.
PRELOADED = {"pg_stat_statements"}
PACKAGES = {"pg_stat_statements": "postgresql-contrib", "hypopg": "postgresql-<version>-hypopg"}


class TargetError(Exception):
    """A target that cannot be used; the message is already free of the DSN's password."""


def own_database_dsn() -> str:
    """This app's own PostgreSQL database as a DSN (DATABASE_URL's libpq options kept)."""
    database = settings.DATABASES["default"]
    params = {
        "host": database["HOST"],
        "port": database["PORT"] or None,
        "dbname": database["NAME"],
        "user": database["USER"],
        "password": database["PASSWORD"] or None,
    }
    options = {k: v for k, v in database.get("OPTIONS", {}).items() if isinstance(v, str)}
    return make_conninfo("", **params, **options)


def allowed_hosts() -> list[str]:
    """QUERYOPT_ALLOWED_HOSTS, and the host of the app's own database (`make run` registers
    it as a target)."""
    hosts = list(settings.QUERYOPT_ALLOWED_HOSTS)
    own = settings.DATABASES["default"].get("HOST")
    if settings.DATABASE_IS_POSTGRES and own:
        hosts.append(own)
    return hosts


def is_own_dsn(dsn: str) -> bool:
    """Whether `dsn` is exactly the app's own database's, which comes from this server's
    configuration, not from a user, and is taken as it is (any libpq option included)."""
    return bool(settings.DATABASE_IS_POSTGRES) and dsn == own_database_dsn()


def checked_conninfo(dsn: str) -> str:
    """The conninfo to connect to `dsn` with, or DsnRefused (see is_own_dsn)."""
    if is_own_dsn(dsn):
        return dsn
    params = connection_params(dsn, allowed_hosts())
    # No password in the DSN must not mean this server's ~/.pgpass.
    return make_conninfo("", **params, passfile=os.devnull)


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection with short timeouts (a failed statement aborts nothing)."""
    try:
        conninfo = checked_conninfo(dsn)
    except DsnRefused as exc:
        raise TargetError(str(exc)) from None
    try:
        return psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
    except Exception as exc:  # noqa: BLE001 - every cause reads the same to the user
        log.warning("%s", describe_error(exc, dsn, f"cannot connect to {mask_dsn(dsn)}"))
        raise TargetError(CONNECT_FAILED) from None


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
