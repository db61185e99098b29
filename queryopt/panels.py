"""The query optimizer's panel on the load-test run page (issue 10, in progress)."""

from __future__ import annotations


def register() -> None:
    """Called once from QueryoptConfig.ready()."""
