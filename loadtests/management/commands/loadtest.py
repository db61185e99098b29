"""Load tests from the command line, for CI pipelines and scripts.

  loadtest export NAME [-o FILE]   /   loadtest import FILE... [--dry-run] [--if-missing]
  loadtest run NAME_OR_ID [--wait] [--local] [--json]
  loadtest url URL (--rate R | --users U) --duration S [--think MIN[,MAX]] [--timeout T]
      [--insecure] [--json]

Progress goes to stderr so that stdout stays clean for --json. With --wait or --local (and for
`url`) the exit status is 0 when the run passed, 1 when it failed (a threshold, or a built-in
rule: no request succeeded, or an error rate above reports.DEFAULT_ERROR_RATE_LIMIT_PCT when
no error-rate threshold is set) or was aborted, 2 on error. The output names the rules that
decided.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loadtests import adhoc, document_commands, documents, execution, reports, tasks, waiting
from loadtests.engine import IntervalSnapshot
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus, RunTrigger
from loadtests.validators import ascii_number
from loadtests.waiting import QueueWorkers

JSON_KEYS = (
    "id", "status", "requests", "errors", "throughput_rps", "latency_ms", "service_time_ms",
    "errors_by_class", "valid", "passed", "status_reason", "thresholds", "name",
)  # fmt: skip


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def parse_think(text: str | None) -> tuple[float, float]:
    if not text:
        return (0.0, 0.0)
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise _fail(f"--think {text!r}: give seconds as MIN or MIN,MAX, e.g. 0.5,1.5") from None
    if len(parts) not in (1, 2) or any(p < 0 for p in parts) or parts[-1] < parts[0]:
        raise _fail(f"--think {text!r}: give MIN or MIN,MAX with 0 <= MIN <= MAX")
    return (parts[0], parts[-1])


class Command(BaseCommand):
    help = "Run load tests from the command line (see `loadtest run -h`, `loadtest url -h`)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        document_commands.add_subcommands(sub)
        run = sub.add_parser("run", help="run a stored definition")
        run.add_argument("definition", metavar="NAME_OR_ID")
        run.add_argument("--wait", action="store_true", help="follow the queued run to its end")
        run.add_argument("--local", action="store_true", help="execute in this process")
        run.add_argument("--json", action="store_true", help="print the summary as JSON")
        run.add_argument(
            "--wait-timeout", type=float, default=None,
            help="seconds to wait beyond the planned duration (default 300)",
        )  # fmt: skip
        url = sub.add_parser("url", help="an ad hoc GET run against one URL, in this process")
        url.add_argument("url")
        load = url.add_mutually_exclusive_group(required=True)
        load.add_argument("--rate", type=float, help="open model: requests per second")
        load.add_argument("--users", type=int, help="closed model: virtual users")
        url.add_argument("--duration", type=int, required=True, help="seconds")
        url.add_argument("--think", help="closed model think time: MIN[,MAX] seconds")
        url.add_argument("--timeout", type=float, default=10.0, help="per-request seconds")
        url.add_argument("--connections", type=int, default=100, help="connection cap")
        url.add_argument(
            "--insecure", action="store_true",
            help="do not verify the https target's certificate (self-signed test targets only)",
        )  # fmt: skip
        url.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] in document_commands.ACTIONS:
            document_commands.handle(self, options)
            return
        if options["action"] == "run":
            run = self._run_definition(options)
        else:
            run = self._run_url(options)
        if run is None:
            return
        self._report(run, as_json=options["json"])
        code = reports.exit_code(run)
        if code:
            sys.stdout.flush()
            raise SystemExit(code)

    # -- subcommands ---------------------------------------------------------------

    def _run_definition(self, options: dict[str, Any]) -> LoadTestRun | None:
        definition = self._find_definition(options["definition"])
        try:
            if options["local"]:
                run = tasks.create_run(definition, trigger=RunTrigger.CLI)
                return self._execute_here(run)
            run = tasks.queue_run(definition, trigger=RunTrigger.CLI)
        except documents.RunRefused as exc:
            raise _fail(documents.problems_text(exc)) from None
        self._progress(f"run #{run.pk} of {definition.name!r} queued for the workers")
        if not options["wait"]:
            if options["json"]:
                self.stdout.write(json.dumps({"id": run.pk, "status": run.status}))
            else:
                self.stdout.write(str(run.pk))
            return None
        grace = 300.0 if options["wait_timeout"] is None else options["wait_timeout"]
        return self._follow(run, grace)

    def _run_url(self, options: dict[str, Any]) -> LoadTestRun:
        if options["duration"] <= 0:
            raise _fail("--duration must be a whole number of seconds above 0")
        if options["rate"] is not None and options["rate"] <= 0:
            raise _fail("--rate must be above 0 requests per second")
        if options["users"] is not None and options["users"] < 1:
            raise _fail("--users must be at least 1")
        if options["timeout"] <= 0:
            raise _fail("--timeout must be above 0 seconds")
        if options["rate"] is not None and options["think"]:
            raise _fail("--think applies to --users (closed model) only")
        frozen = adhoc.adhoc_config(
            options["url"],
            rate=options["rate"],
            users=options["users"],
            duration_s=options["duration"],
            think=parse_think(options["think"]),
            timeout_s=options["timeout"],
            max_connections=options["connections"],
            verify_tls=not options["insecure"],
        )
        try:
            run = adhoc.create_adhoc_run(frozen, trigger=RunTrigger.CLI)
        except documents.RunRefused as exc:
            raise _fail(documents.problems_text(exc)) from None
        return self._execute_here(run)

    # -- helpers -------------------------------------------------------------------

    def _find_definition(self, key: str) -> LoadTestDefinition:
        found = LoadTestDefinition.objects.filter(name=key).first()
        number = ascii_number(key)
        if found is None and number is not None:
            found = LoadTestDefinition.objects.filter(pk=number).first()
        if found is None:
            raise _fail(f"no load-test definition named or numbered {key!r}")
        return found

    def _execute_here(self, run: LoadTestRun) -> LoadTestRun:
        self._progress(f"run #{run.pk} ({run.name}) starting in this process")

        def progress(run: LoadTestRun, snapshot: IntervalSnapshot) -> None:
            self._progress(
                f"[{snapshot.index + 1:>4}s] {snapshot.requests:>7} req  {snapshot.errors:>5} err  "
                f"p95 {snapshot.p95_ms:8.2f} ms  {snapshot.achieved_rps:9.1f} req/s"
            )

        result = execution.execute(run.pk, progress=progress)
        if result is None:
            raise _fail(f"run #{run.pk} was taken by another process")
        return result

    def _follow(self, run: LoadTestRun, grace_s: float) -> LoadTestRun:
        # The queue has its own limit (LOADTEST_QUEUE_TIMEOUT_S, enforced below even when no
        # beat or worker runs housekeeping), so the wait timeout counts from the run's start.
        deadline: float | None = None
        last = workers_said = None
        while True:
            run.refresh_from_db()
            if run.status == RunStatus.QUEUED:
                workers_said = self._wait_for_worker(run, workers_said)
            if not run.is_active:
                if run.status == RunStatus.ERROR:
                    reason = reports.summary_dict(run)["status_reason"]
                    self._progress(f"run #{run.pk} ended as error: {reason}")
                return run
            if run.status == RunStatus.QUEUED:
                time.sleep(1)
                continue
            if deadline is None:
                deadline = time.monotonic() + run.planned_duration_s + grace_s
                self._say_taken(run)
            line = f"run #{run.pk}: {run.status}, {run.requests} requests, {run.errors} errors"
            if line != last:
                self._progress(line)
                last = line
            if time.monotonic() > deadline:
                raise _fail(f"run #{run.pk} still {run.status} after the wait timeout")
            time.sleep(1)

    def _wait_for_worker(self, run: LoadTestRun, said: QueueWorkers | None) -> QueueWorkers:
        """Say what the queued run waits for, again only when that changes; end it as error
        once it has waited LOADTEST_QUEUE_TIMEOUT_S."""
        workers = waiting.queue_workers()
        if execution.expire_queued_run(run, workers=workers):
            return workers
        if said is None or (said.alive, said.busy) != (workers.alive, workers.busy):
            self._progress(f"run #{run.pk}: {waiting.waiting_state(run, workers)['message']}")
        return workers

    def _say_taken(self, run: LoadTestRun) -> None:
        queued_s = (run.started_at - run.created_at).total_seconds() if run.started_at else 0.0
        worker = run.worker_node or f"{run.worker_host} pid {run.worker_pid}"
        self._progress(f"run #{run.pk}: a worker took it after {queued_s:.1f} s ({worker})")

    def _report(self, run: LoadTestRun, *, as_json: bool) -> None:
        summary = reports.summary_dict(run)
        if as_json:
            self.stdout.write(json.dumps({key: summary[key] for key in JSON_KEYS}))
            return
        latency = summary["latency_ms"]
        self.stdout.write(
            f"run #{run.pk} {run.status}: {run.requests} requests, {run.errors} errors, "
            f"{run.throughput_rps or 0:.1f} req/s, p50 {latency['p50']} ms, "
            f"p95 {latency['p95']} ms, p99 {latency['p99']} ms"
        )
        if summary["status_reason"]:
            self.stdout.write(summary["status_reason"])

    def _progress(self, text: str) -> None:
        self.stderr.write(text)
