"""Timing of the app's own queries in every request and Celery task (issue 10, in progress)."""

from __future__ import annotations


def install() -> None:
    """Called once from QueryoptConfig.ready()."""
