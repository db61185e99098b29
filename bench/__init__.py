"""Benchmarks behind `make bench` (never part of `make test`); see bench/README.md."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def bench_database_url(db_name: str, bench: str) -> str:
    """DATABASE_URL pointed at this benchmark's own PostgreSQL database."""
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/offgridperf")
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"the {bench} bench needs PostgreSQL; DATABASE_URL is {parts.scheme}://")
    return urlunsplit(parts._replace(path=f"/{db_name}"))


def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist."""
    from offgridperf.database import ensure_postgres_database
    from offgridperf.env import parse_database_url

    db = parse_database_url("DATABASE_URL", url)
    ensure_postgres_database(
        db.name, host=db.host, port=db.port, user=db.user, password=db.password
    )


def bench_env(db_name: str, bench: str) -> dict[str, str]:
    """The environment of a child process that runs Django on this benchmark's database.

    The database is created when missing; migrating it is the child's job (Django set up
    in a fresh process, whatever the parent ran before).
    """
    url = bench_database_url(db_name, bench)
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "offgridperf.settings"}
    env.setdefault("OFFGRIDPERF_LOCAL", "1")
    env["DEBUG"] = "0"
    return env
