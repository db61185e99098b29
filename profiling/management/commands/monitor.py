"""Monitor every registered profile target, for as long as it runs (runall starts it; a
container runs `manage.py role monitor`):

  monitor [--interval S] [--once]

Every --interval seconds (PROFILING_MONITOR_INTERVAL_S) each target is read once; once a minute
the readings are rolled up, pruned and judged for leaks (profiling/monitoring.py). A leak alert's
delivery is queued on Celery's default queue. SIGTERM or Ctrl-C ends it after the current
reading. A database that does not answer is logged and tried again at the next reading.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections

from profiling import monitoring, tasks

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Read every registered profile target's memory, CPU, threads and files continuously."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between readings (PROFILING_MONITOR_INTERVAL_S; 5)",
        )
        parser.add_argument("--once", action="store_true", help="One reading of each, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"] or settings.PROFILING_MONITOR_INTERVAL_S
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        self.stopping = False

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        watcher = monitoring.Monitor()
        self.stdout.write(f"monitoring every registered profile target every {interval:g} s")
        self.stdout.flush()
        next_at = time.monotonic()
        while not self.stopping:
            self._tick(watcher)
            if options["once"]:
                return
            next_at += interval
            # Late (a slow database): start again from now rather than catch up in a burst.
            next_at = max(next_at, time.monotonic())
            while not self.stopping and time.monotonic() < next_at:
                time.sleep(min(0.2, max(0.0, next_at - time.monotonic())))

    def _tick(self, watcher: monitoring.Monitor) -> None:
        close_old_connections()
        try:
            raised = watcher.tick()
        except DatabaseError as exc:
            log.warning("monitor: the database did not answer: %s", exc)
            return
        for alert_id in raised:
            tasks.queue_monitor_alert(alert_id)
