"""Load tests from the command line, for CI pipelines and scripts.

  loadtest export NAME [-o FILE]   /   loadtest import FILE... [--dry-run] [--if-missing]
  loadtest run NAME_OR_ID [--wait] [--local] [--json] [--report F] [--junit F] [--summary-md F]
  loadtest run NAME_OR_ID --server URL --token T [--wait] [--json]   (through the HTTP API)
  loadtest url URL (--users N | --rate R) --duration S [--connections C] [--timeout T]
      [--think MIN[,MAX]] [--insecure] [-X METHOD] [-H 'Name: value']...
      [-d BODY | --data-file FILE] [--expect 200-399] [--threshold 'p95<200']... [--json]

Progress goes to stderr, one line a second, so that stdout stays clean for --json. With --wait
or --local (and for `url`) the exit status is 0 when the run passed, 1 when it failed (a
threshold, or a built-in rule: no request succeeded, or an error rate above
reports.DEFAULT_ERROR_RATE_LIMIT_PCT when no error-rate threshold is set) or was aborted, 2 on
error or a bad flag, and 128 + the signal (130 for Ctrl-C) when interrupted: the run is then
cancelled and its partial summary printed. The output names the rules that decided.

--report, --junit and --summary-md write the finished run as a self-contained HTML file, JUnit
XML and a Markdown summary (loadtests.runreports; through --server, fetched from the API),
whatever the verdict; the exit status stays the run's. Their paths are checked before the run
starts, and a file that cannot be written exits 2 naming the flag.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from loadtests import (
    adhoc,
    document_commands,
    documents,
    lifecycle,
    reports,
    runjson,
    runreports,
    services,
    tasks,
    waiting,
)
from loadtests.client import ApiClient, ApiError
from loadtests.engine import IntervalSnapshot
from loadtests.engine.config import MAX_STEP_BODY_BYTES, step_body_problem
from loadtests.engine.flags import FlagError, add_load_flags, load_fields
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus, RunTrigger
from loadtests.validators import ascii_number

# How long an interrupted --wait waits for the worker (or server) to end the run as cancelled:
# the worker polls for the flag every half second.
CANCEL_WAIT_S = 10.0
POLL_S = 0.25  # the database: cheap
API_POLL_S = 0.5  # a server: half as often
PROGRESS_EVERY_S = 1.0
FINISHED = (
    RunStatus.PASSED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.ABORTED,
    RunStatus.INTERRUPTED,
    RunStatus.ERROR,
)
# A run's exit code, and an ad-hoc URL run's (its engine outcome `aborted` also exits 1).
EXIT_CODES = reports.FINISHED_EXIT_CODES

Fetch = Callable[[], dict[str, Any]]
# The report flags: (option name, flag, the report's API path, runreports' kind, help).
REPORT_FLAGS = (
    ("report", "--report", "report.html", "html",
     "write the run as one self-contained HTML file (charts, tables; opens offline)"),
    ("junit", "--junit", "junit.xml", "junit",
     "write JUnit XML for CI test results: one testcase per verdict rule"),
    ("summary_md", "--summary-md", "summary.md", "markdown",
     "write a Markdown summary against the baseline, for a pull-request comment"),
)  # fmt: skip
# A finished run's report (run id, runreports' kind, API path): from the database or the API.
ReportSource = Callable[[int, str, str], str]


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _flag(name: str, text: Any, parse: Callable[[Any], Any]) -> Any:
    """`parse(text)`, or exit 2 naming the flag, what was given and the rule."""
    try:
        return parse(text)
    except adhoc.FlagProblem as exc:
        raise _fail(f"{name} {text!r}: {exc}") from None


class Interrupts:
    """Ctrl-C and SIGTERM as a request to cancel the run, not as an exception: the handler only
    records the signal and calls `on_signal` (which must not use this thread's database
    connection, since the signal may arrive in the middle of a query)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_signal: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return  # already cancelling: the run ends within a second or two
        self.signum = signum
        if self.on_signal is not None:
            self.on_signal()

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)


def _cancel_in_thread(run_id: int) -> None:
    """Ask run `run_id` to stop, from a thread of its own with its own database connection."""

    def cancel() -> None:
        try:
            lifecycle.request_cancel(LoadTestRun(pk=run_id))
        finally:
            connection.close()

    threading.Thread(target=cancel, name=f"cancel-run-{run_id}").start()


class Command(BaseCommand):
    help = "Run load tests from the command line (see `loadtest run -h`, `loadtest url -h`)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        document_commands.add_subcommands(sub)
        self._add_run_arguments(sub.add_parser("run", help="run a stored definition"))
        self._add_url_arguments(
            sub.add_parser("url", help="an ad hoc run against one URL, in this process")
        )

    def _add_run_arguments(self, run: Any) -> None:
        run.add_argument("definition", metavar="NAME_OR_ID")
        run.add_argument("--wait", action="store_true", help="follow the queued run to its end")
        run.add_argument("--local", action="store_true", help="execute in this process")
        run.add_argument("--json", action="store_true", help="print the summary as JSON")
        run.add_argument(
            "--shards", type=int, default=None,
            help="split the load over this many workers on queue loadgen (default: the "
            "definition's)",
        )  # fmt: skip
        run.add_argument(
            "--duration", type=int, default=None,
            help="seconds to run (default: the definition's); the definition is unchanged",
        )  # fmt: skip
        run.add_argument(
            "--wait-timeout", type=float, default=None,
            help="seconds to wait beyond the planned duration (default 300)",
        )  # fmt: skip
        run.add_argument(
            "--server", default=os.environ.get("OFFGRIDPERF_SERVER") or None,
            help="start and follow the run through this server's HTTP API, with no database "
            "access (default $OFFGRIDPERF_SERVER)",
        )  # fmt: skip
        run.add_argument(
            "--token", default=os.environ.get("OFFGRIDPERF_TOKEN") or None,
            help="the API token for --server (default $OFFGRIDPERF_TOKEN)",
        )  # fmt: skip
        _add_report_arguments(run)

    def _add_url_arguments(self, url: Any) -> None:
        url.add_argument("url")
        # The load flags are the engine CLI's (python -m loadtests.engine): one declaration.
        add_load_flags(url)
        url.add_argument("-X", "--request", dest="method", help="the method (default GET, or "
                         "POST with -d as in curl)")  # fmt: skip
        url.add_argument("-H", "--header", dest="headers", action="append",
                         help="'Name: value', repeatable")  # fmt: skip
        body = url.add_mutually_exclusive_group()
        body.add_argument("-d", "--data", help="the request body")
        body.add_argument("--data-file", help="read the request body from this file")
        url.add_argument("--expect", default=adhoc.DEFAULT_EXPECT,
                         help="the statuses that count as success: codes and ranges, e.g. "
                         "200-399 (the default) or 200,201")  # fmt: skip
        url.add_argument("--threshold", dest="thresholds", action="append",
                         help="k6's syntax, repeatable: p95<200, p99<500 (ms), errors<1%%, "
                         "rps>100; the run fails when one is not met")  # fmt: skip
        url.add_argument("--json", action="store_true", help="print the summary as JSON")
        _add_report_arguments(url)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] in document_commands.ACTIONS:
            document_commands.handle(self, options)
            return
        _check_report_paths(options)
        self._report_source: ReportSource = _stored_report
        with Interrupts() as interrupts:
            if options["action"] == "url":
                summary = self._run_url(options, interrupts)
            elif options["server"]:
                summary = self._run_remote(options, interrupts)
            else:
                summary = self._run_definition(options, interrupts)
        if summary is None:
            return
        self._report(summary, as_json=options["json"])
        self._write_reports(summary["id"], options)
        if interrupts.signum is not None:
            code = interrupts.exit_code
        else:
            code = EXIT_CODES.get(summary["status"], 2)
        if code:
            sys.stdout.flush()
            raise SystemExit(code)

    # -- subcommands ---------------------------------------------------------------

    def _run_definition(
        self, options: dict[str, Any], interrupts: Interrupts
    ) -> dict[str, Any] | None:
        if options["token"] and not options["server"]:
            raise _fail("--token goes with --server (or $OFFGRIDPERF_SERVER)")
        definition = self._find_definition(options["definition"])
        shards = options.get("shards")
        overrides = {
            field: options[option]
            for field, option in (("shards", "shards"), ("duration_s", "duration"))
            if options.get(option) is not None
        } or None
        try:
            if options["local"]:
                if (shards or definition.shards) > 1:
                    raise _fail("--local runs one shard in this process: use --shards 1")
                run = services.create_run(definition, trigger=RunTrigger.CLI, overrides=overrides)
                return self._execute_here(run, interrupts)
            run = tasks.queue_run(definition, trigger=RunTrigger.CLI, overrides=overrides)
        except documents.RunRefused as exc:
            raise _fail(documents.problems_text(exc)) from None
        self._progress(f"run #{run.pk} of {definition.name!r} queued for the workers")
        if not options["wait"]:
            self._print_queued(run.pk, run.status, options["json"])
            return None
        return self._follow(
            self._stored_run(run),
            cancel=lambda: lifecycle.request_cancel(run),
            grace_s=_grace(options),
            interrupts=interrupts,
        )

    def _run_url(self, options: dict[str, Any], interrupts: Interrupts) -> dict[str, Any]:
        frozen = self._adhoc_config(options)
        try:
            run = adhoc.create_adhoc_run(frozen, trigger=RunTrigger.CLI)
        except documents.RunRefused as exc:
            raise _fail(documents.problems_text(exc)) from None
        return self._execute_here(run, interrupts)

    def _run_remote(self, options: dict[str, Any], interrupts: Interrupts) -> dict[str, Any] | None:
        if options["local"]:
            raise _fail("--local runs here, --server on the server's workers: give one")
        if options.get("shards") is not None:
            raise _fail("--shards is not sent through --server: set Shards on the definition")
        if options.get("duration") is not None:
            raise _fail("--duration is not sent through --server: set Duration on the definition")
        if not options["token"]:
            raise _fail("--server needs --token (or $OFFGRIDPERF_TOKEN): an API token")
        try:
            client = ApiClient(options["server"], options["token"])
            started = client.start_run(options["definition"])
        except ApiError as exc:
            raise _fail(f"not started: {exc}") from None
        run_id = started["id"]
        self._report_source = lambda _run, _kind, path: _fetched_report(client, run_id, path)
        self._progress(f"run #{run_id} of {started['name']!r} queued: {started['url']}")
        if not options["wait"]:
            self._print_queued(run_id, started["status"], options["json"])
            return None

        def fetch() -> dict[str, Any]:
            try:
                return client.get_run(run_id)
            except ApiError as exc:
                raise _fail(f"run #{run_id}: {exc}") from None

        def cancel() -> None:
            try:
                client.cancel_run(run_id)
            except ApiError as exc:
                self._progress(f"run #{run_id}: the cancel was refused: {exc}")

        return self._follow(
            fetch,
            cancel=cancel,
            grace_s=_grace(options),
            interrupts=interrupts,
            poll_s=API_POLL_S,
        )

    # -- ad hoc flags --------------------------------------------------------------

    def _adhoc_config(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            load = load_fields(options)
        except FlagError as exc:
            raise _fail(str(exc)) from None
        return adhoc.adhoc_config(
            options["url"],
            **load,
            request=self._adhoc_request(options),
            thresholds=_flag("--threshold", options["thresholds"], adhoc.parse_thresholds),
        )

    def _adhoc_request(self, options: dict[str, Any]) -> adhoc.Request:
        body = options["data"]
        if options["data_file"] is not None:
            body = _read_body(options["data_file"])
        # As curl: a body without -X is a POST.
        method = options["method"] or ("POST" if body is not None else "GET")
        headers = _flag("-H", options["headers"], adhoc.parse_headers)
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            # curl's default for -d; give -H 'Content-Type: application/json' for JSON.
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        _flag("URL", options["url"], adhoc.split_url)
        return adhoc.Request(
            method=_flag("-X", method, adhoc.parse_method),
            headers=headers,
            body=body,
            expected_statuses=_flag("--expect", options["expect"], adhoc.parse_expect),
        )

    # -- running and following -------------------------------------------------------

    def _find_definition(self, key: str) -> LoadTestDefinition:
        found = LoadTestDefinition.objects.filter(name=key).first()
        number = ascii_number(key)
        if found is None and number is not None:
            found = LoadTestDefinition.objects.filter(pk=number).first()
        if found is None:
            raise _fail(f"no load-test definition named or numbered {key!r}")
        return found

    def _execute_here(self, run: LoadTestRun, interrupts: Interrupts) -> dict[str, Any]:
        self._progress(f"run #{run.pk} ({run.name}) starting in this process")
        interrupts.on_signal = lambda: _cancel_in_thread(run.pk)
        if interrupts.signum is not None:  # it came while the run was being created
            lifecycle.request_cancel(run)
        totals = {"requests": 0, "errors": 0}

        def progress(run: LoadTestRun, snapshot: IntervalSnapshot) -> None:
            totals["requests"] += snapshot.requests
            totals["errors"] += snapshot.errors
            self._progress(
                runjson.progress_line(
                    {
                        "elapsed_s": snapshot.start_offset_s + snapshot.length_s,
                        "planned_s": run.planned_duration_s,
                        "throughput_rps": snapshot.throughput_rps,
                        "latency_p95_ms": snapshot.latency_p95_ms if snapshot.requests else None,
                        **totals,
                    }
                )
            )

        result = lifecycle.execute(run.pk, progress=progress)
        if result is None:
            run.refresh_from_db()
            if run.status != RunStatus.CANCELLED:  # not cancelled before it started
                raise _fail(f"run #{run.pk} was taken by another process")
            result = run
        if interrupts.signum is not None:
            self._progress(f"run #{run.pk} interrupted: {result.status}; the partial summary:")
        return runjson.run_json(result)

    def _stored_run(self, run: LoadTestRun) -> Fetch:
        def fetch() -> dict[str, Any]:
            run.refresh_from_db()
            if run.status == RunStatus.QUEUED:
                # The queue has its own limit, enforced here even when no beat or worker runs
                # housekeeping.
                lifecycle.expire_queued_run(run, workers=waiting.queue_workers())
            return runjson.run_json(run)

        return fetch

    def _follow(
        self,
        fetch: Fetch,
        *,
        cancel: Callable[[], Any],
        grace_s: float,
        interrupts: Interrupts,
        poll_s: float = POLL_S,
    ) -> dict[str, Any]:
        """Follow a run a worker executes to its end, a progress line a second. The wait
        timeout counts from the run's start: the queue has its own limit."""
        deadline = cancel_deadline = None
        said_waiting: tuple[Any, ...] | None = None
        said_taken = False
        next_line = 0.0
        while True:
            summary = fetch()
            if summary["status"] in FINISHED:
                if summary["status"] == RunStatus.ERROR:
                    self._progress(
                        f"run #{summary['id']} ended as error: {summary['status_reason']}"
                    )
                return summary
            if interrupts.signum is not None and cancel_deadline is None:
                self._progress(f"run #{summary['id']}: interrupted; cancelling it")
                cancel()
                cancel_deadline = time.monotonic() + CANCEL_WAIT_S
            if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                self._progress(f"run #{summary['id']} still {summary['status']}: cancel requested")
                return summary
            if summary["status"] == RunStatus.QUEUED:
                state = summary.get("waiting") or {}
                key = (
                    state.get("workers_alive"),
                    state.get("workers_busy"),
                    tuple(state.get("busy_with") or ()),  # said again when behind another run
                )
                if state and key != said_waiting:
                    self._progress(f"run #{summary['id']}: {state['message']}")
                    said_waiting = key
            else:
                if not said_taken:
                    said_taken = True
                    deadline = time.monotonic() + summary["planned_duration_s"] + grace_s
                    self._progress(
                        f"run #{summary['id']}: a worker took it after "
                        f"{summary['queued_s'] or 0:.1f} s ({summary['worker']})"
                    )
                if time.monotonic() >= next_line and summary.get("progress"):
                    next_line = time.monotonic() + PROGRESS_EVERY_S
                    self._progress(runjson.progress_line(summary["progress"]))
                if deadline is not None and time.monotonic() > deadline:
                    raise _fail(
                        f"run #{summary['id']} still {summary['status']} after the wait timeout"
                    )
            time.sleep(poll_s)

    # -- output ----------------------------------------------------------------------

    def _print_queued(self, run_id: int, status: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"id": run_id, "status": status}))
        else:
            self.stdout.write(str(run_id))

    def _report(self, summary: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(summary))
            return
        latency = summary["latency_ms"]
        self.stdout.write(
            f"run #{summary['id']} {summary['status']}: {summary['requests']} requests, "
            f"{summary['errors']} errors, {summary['throughput_rps'] or 0:.1f} req/s, "
            f"p50 {latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms"
        )
        if summary["status_reason"]:
            self.stdout.write(summary["status_reason"])
        self.stdout.write(summary["url"])

    def _progress(self, text: str) -> None:
        self.stderr.write(text)

    def _write_reports(self, run_id: int, options: dict[str, Any]) -> None:
        """Each report asked for, written whatever the verdict (a failed run needs it most)."""
        for option, flag, path, kind, _ in REPORT_FLAGS:
            if not options.get(option):
                continue
            text = self._report_source(run_id, kind, path)
            try:
                Path(options[option]).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise _fail(
                    f"{flag} {options[option]!r}: cannot write it ({exc.strerror})"
                ) from None
            self._progress(f"{flag}: wrote {options[option]}")


def _grace(options: dict[str, Any]) -> float:
    return 300.0 if options["wait_timeout"] is None else options["wait_timeout"]


def _read_body(name: str) -> str:
    try:
        size = Path(name).stat().st_size
        if size > MAX_STEP_BODY_BYTES:  # told before the file is read into memory
            raise _fail(f"--data-file {name!r}: {step_body_problem(size)}")
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"--data-file {name!r}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise _fail(f"--data-file {name!r}: the body must be UTF-8 text") from None


def _add_report_arguments(parser: Any) -> None:
    for _, flag, _, _, text in REPORT_FLAGS:
        parser.add_argument(flag, metavar="FILE", help=text)


def _check_report_paths(options: dict[str, Any]) -> None:
    """Refuse, before the run starts, a report that could not be written at its end."""
    asked = [(flag, options[option]) for option, flag, *_ in REPORT_FLAGS if options.get(option)]
    if not asked:
        return
    if options["action"] == "run" and not (options.get("wait") or options.get("local")):
        raise _fail(f"{asked[0][0]} needs --wait or --local: a queued run has nothing to report")
    for flag, name in asked:
        _check_writable(flag, name)


def _check_writable(flag: str, name: str) -> None:
    """By opening the file as the end of the run will: access() says yes to root even where
    the kernel then refuses (a read-only mount, /sys)."""
    path = Path(name)
    try:
        if path.is_dir():
            raise _fail(f"{flag} {name!r}: that is a directory; give a file name")
        if not path.parent.is_dir():
            raise _fail(f"{flag} {name!r}: the directory {str(path.parent)!r} does not exist")
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:  # even asking about a name too long fails
        raise _fail(f"{flag} {name!r}: cannot write it ({exc.strerror})") from None


def _stored_report(run_id: int, kind: str, path: str) -> str:
    run = LoadTestRun.objects.select_related("definition").get(pk=run_id)
    return runreports.render(kind, run)


def _fetched_report(client: ApiClient, run_id: int, path: str) -> str:
    try:
        return client.get_report(run_id, path)
    except ApiError as exc:
        raise _fail(f"run #{run_id}: the report was not fetched: {exc}") from None
