"""Making sure the configured PostgreSQL database exists (bootstrap, the benchmarks).

Plain psycopg, no Django: the benchmarks call it before any Django process is set up.
"""

from __future__ import annotations

CONNECT_TIMEOUT_S = 5


class DatabaseSetupError(Exception):
    """One line naming DATABASE_URL, where it points (never its password) and the cause."""


def ensure_postgres_database(
    name: str, *, host: str = "", port: int | str | None = None, user: str = "", password: str = ""
) -> bool:
    """Create database `name` when the server lacks it; True if it was created.

    Anything else that stops a connection (server down, wrong user, no right to create)
    raises DatabaseSetupError.
    """
    import psycopg
    from psycopg import sql

    params = {
        "host": host or None,
        "port": port or None,
        "user": user or None,
        "password": password or None,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    where = f"{host or 'localhost'}:{port or 5432}"
    who = f" as {user}" if user else ""
    try:
        psycopg.connect(dbname=name, **params).close()
        return False
    except psycopg.OperationalError as exc:
        reason = _first_line(exc)
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as maintenance:
            found = maintenance.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found:
                raise DatabaseSetupError(
                    f"DATABASE_URL: cannot connect to database {name!r} on {where}{who}: {reason}"
                )
            maintenance.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise DatabaseSetupError(
            f"DATABASE_URL: cannot connect to PostgreSQL on {where}{who} to use or create "
            f"database {name!r}: {_first_line(exc)} (is the server running, and may this user "
            "create databases?)"
        ) from None
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
