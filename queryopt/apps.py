from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class QueryoptConfig(AppConfig):
    name = "queryopt"
    verbose_name = "Queries"

    def ready(self) -> None:
        from loadtests import events
        from queryopt import capture, panels, pool

        events.run_started.connect(on_run_started, dispatch_uid="queryopt-run-started")
        events.run_finished.connect(on_run_finished, dispatch_uid="queryopt-run-finished")
        capture.install()
        pool.install()
        panels.register()


# On the worker, synchronously: the start snapshot must be taken before the run's first
# request, and the end one before another run's queries mix in. A target that cannot be
# reached costs at most its connect timeout and is recorded in its last_error.
def on_run_started(sender: Any = None, run_id: int | None = None, **kwargs: Any) -> None:
    from queryopt import snapshots
    from queryopt.models import SnapshotReason

    snapshots.snapshot_enabled_targets(SnapshotReason.RUN_START, run_id)


def on_run_finished(sender: Any = None, run_id: int | None = None, **kwargs: Any) -> None:
    from queryopt import snapshots
    from queryopt.models import SnapshotReason

    snapshots.snapshot_enabled_targets(SnapshotReason.RUN_END, run_id)
