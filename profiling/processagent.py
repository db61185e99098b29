"""Starts the process agent (offgridperf_agent.process) in the workbench's own processes."""

from __future__ import annotations

import logging
import os

from django.conf import settings

log = logging.getLogger(__name__)


def install() -> None:
    """Start the agent when PROFILING_AGENT is on and Redis is configured."""
    if not settings.PROFILING_AGENT:
        return
    if not settings.REDIS_URL:
        log.info("PROFILING_AGENT is on but REDIS_URL is not set: the agent stays off")
        return
    from offgridperf_agent import process

    process.start_here_and_in_children(settings.REDIS_URL, os.environ.get("OFFGRIDPERF_ROLE", ""))
