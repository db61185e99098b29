from __future__ import annotations

from django.apps import AppConfig


class ProfilingConfig(AppConfig):
    name = "profiling"
    verbose_name = "Profiles"

    def ready(self) -> None:
        from profiling import agent

        agent.install()
