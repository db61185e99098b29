from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class OffgridperfAgentConfig(AppConfig):
    name = "offgridperf_agent"
    verbose_name = "offgridperf agent"

    def ready(self) -> None:
        from offgridperf_agent import measure

        measure.instrument_caches()
        checks.register(check_settings)


MIDDLEWARE_PATH = "offgridperf_agent.middleware.AgentMiddleware"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The settings the agent needs, named, so that a silent agent is never a mystery."""
    from django.conf import settings

    problems: list[checks.CheckMessage] = []
    for name in ("OFFGRIDPERF_AGENT_KEY", "OFFGRIDPERF_AGENT_REDIS_URL"):
        if not getattr(settings, name, None):
            problems.append(
                checks.Warning(
                    f"{name} is not set: the offgridperf agent measures nothing.",
                    id="offgridperf_agent.W001",
                )  # fmt: skip
            )
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH not in middleware:
        problems.append(checks.Warning(f"{MIDDLEWARE_PATH} is not in MIDDLEWARE.",
                                       id="offgridperf_agent.W002"))  # fmt: skip
    elif middleware[0] != MIDDLEWARE_PATH:
        problems.append(
            checks.Warning(
                f"{MIDDLEWARE_PATH} should come first in MIDDLEWARE, so that the "
                "server time covers every other middleware.",
                id="offgridperf_agent.W003",
            )  # fmt: skip
        )
    return problems
