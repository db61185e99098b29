"""What the query pages can do on this installation, and the one line that says what is missing.

Plans (EXPLAIN) and index advice (HypoPG, pg_stat_statements) run on PostgreSQL only. `make
run`'s default database is SQLite: there, the pages say so instead of offering what cannot
work."""

from __future__ import annotations

from django.conf import settings

from queryopt.models import QueryShape

HOW_TO_GET_POSTGRES = (
    "set DATABASE_URL=postgres://USER@HOST/NAME (PostgreSQL with pg_stat_statements and HypoPG) "
    "and restart, or register a PostgreSQL query target "
    "(manage.py queryopt target add NAME --dsn postgres://...)"
)


def own_database_is_postgres() -> bool:
    return bool(settings.DATABASE_IS_POSTGRES)


def explain_missing(shape: QueryShape) -> str:
    """Why this query cannot be planned here, in one line; empty when it can. A registered
    target is PostgreSQL; the own database may be SQLite."""
    if shape.target_id is not None or own_database_is_postgres():
        return ""
    return (
        "Explain needs PostgreSQL: this query ran on this app's own database, which is SQLite. "
        f"To plan queries, {HOW_TO_GET_POSTGRES}."
    )


def indexes_missing(has_targets: bool) -> str:
    """Why the Indexes page has nothing to show, in one line; empty when it can show a target."""
    if has_targets:
        return ""
    if own_database_is_postgres():
        return (
            "No query target is registered: add one in the admin or with "
            "manage.py queryopt target add NAME --dsn DSN (or --from-database-url)."
        )
    return (
        "Index advice needs PostgreSQL: this app's database is SQLite and no PostgreSQL query "
        f"target is registered. To get it, {HOW_TO_GET_POSTGRES}."
    )
