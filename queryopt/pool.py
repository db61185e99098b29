"""Per-process statistics of the psycopg connection pool, added up through Redis."""

from __future__ import annotations


def install() -> None:
    """Called once from QueryoptConfig.ready()."""
