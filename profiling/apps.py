from __future__ import annotations

from django.apps import AppConfig


class ProfilingConfig(AppConfig):
    name = "profiling"
    verbose_name = "Profiles"

    def ready(self) -> None:
        from loadtests import events
        from profiling import panels, processagent, tasks

        events.run_started.connect(tasks.on_run_started, dispatch_uid="profiling-run-started")
        panels.register()
        panels.register_compare()
        panels.register_report()
        processagent.install()
