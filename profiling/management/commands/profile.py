"""Profile a live Python process from the command line, synchronously:

  profile cpu --pid PID --duration S [--rate HZ] [--children] [--idle] [--any-process] [--json]
  profile memory --pid PID --duration S [--interval MS] [--children] [--any-process] [--json]
  profile threads --pid PID [--any-process] [--json]
  profile trace --pid PID --duration S [--rate HZ] [--any-process] [--json]
  profile allocations --pid PID --duration S [--any-process] [--json]
  profile target add NAME (--pid PID | --pid-file PATH | --cmdline TEXT) [--children]
                          [--if-missing]
  profile target list

Each capture is stored like one taken from the dashboard (tied to the load-test run going on, if
any). Only a registered profile target's process (or a child of one registered with its
children) is captured, as from the dashboard; --any-process lifts that for whoever has the shell.
Exit 0 on success, 2 on error with one line naming the cause.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from profiling import services
from profiling.models import CaptureStatus, ProfileCapture, ProfileTarget


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


class Command(BaseCommand):
    help = "Take a CPU, memory, thread, trace or allocation capture of a live Python process."

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True)
        target = kinds.add_parser("target").add_subparsers(dest="target_command", required=True)
        add = target.add_parser("add")
        add.add_argument("name")
        how = add.add_mutually_exclusive_group(required=True)
        how.add_argument("--pid", type=int)
        how.add_argument("--pid-file", default="")
        how.add_argument("--cmdline", default="", help="Text the command line contains.")
        add.add_argument("--children", action="store_true", help="With child processes.")
        add.add_argument("--if-missing", action="store_true", help="Keep an existing target.")
        target.add_parser("list")
        for kind in ("cpu", "memory", "threads", "trace", "allocations"):
            sub = kinds.add_parser(kind)
            sub.add_argument("--pid", type=int, required=True)
            sub.add_argument("--json", action="store_true", help="Print the result as JSON.")
            sub.add_argument(
                "--any-process",
                action="store_true",
                help="Capture the PID even when no profile target points at it.",
            )
            if kind != "threads":
                sub.add_argument("--duration", type=float, required=True, help="Seconds.")
            if kind not in ("threads", "allocations"):
                sub.add_argument("--children", action="store_true", help="With child processes.")
            if kind in ("cpu", "trace"):
                sub.add_argument("--rate", type=int, default=100, help="Samples per second.")
                sub.add_argument("--idle", action="store_true", help="Keep idle frames.")
            if kind == "memory":
                sub.add_argument("--interval", type=int, default=100, help="Milliseconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["kind"] == "target":
            self._target(options)
            return
        try:
            capture = services.create_capture(
                options["kind"],
                pid=options["pid"],
                duration_s=options.get("duration") or 0.0,
                rate_hz=options.get("rate") or 100,
                interval_ms=options.get("interval") or 100,
                include_children=options.get("children", False),
                idle=options.get("idle", False),
                created_by="cli",
                any_process=options["any_process"],
            )
        except services.CaptureProblem as exc:
            raise _fail(str(exc)) from None
        services.execute(capture.pk)
        capture.refresh_from_db()
        if capture.status != CaptureStatus.DONE:
            raise _fail(f"capture {capture.pk}: {capture.error}")
        result = cli_result(capture)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self._print(capture, result)

    def _target(self, options: dict[str, Any]) -> None:
        if options["target_command"] == "list":
            for target in ProfileTarget.objects.all():
                how = target.pid or target.pid_file or repr(target.cmdline_match)
                children = " with children" if target.include_children else ""
                self.stdout.write(f"{target.name}: {how}{children}")
            return
        name = options["name"]
        if ProfileTarget.objects.filter(name=name).exists():
            if options["if_missing"]:
                self.stdout.write(f"profile target {name!r} exists: left as it is")
                return
            raise _fail(f"name: a profile target named {name!r} exists (--if-missing keeps it)")
        target = ProfileTarget(
            name=name,
            pid=options["pid"],
            pid_file=options["pid_file"],
            cmdline_match=options["cmdline"],
            include_children=options["children"],
        )
        try:
            target.full_clean()
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise _fail(f"{field}: {messages[0]}") from None
        target.save()
        self.stdout.write(f"added profile target {name!r}")

    def _print(self, capture: ProfileCapture, result: dict[str, Any]) -> None:
        self.stdout.write(f"{capture} ({capture.tool} {capture.tool_version})")
        for function in result.get("top_functions", [])[:20]:
            self.stdout.write(
                f"{function['self_pct']:6.1f}% self {function['total_pct']:6.1f}% total  "
                f"{function['function']} ({function['file']}:{function['line']})"
            )
        if "verdict" in result:
            self.stdout.write(
                f"{result['samples']} samples, slope {result['slope_mb_per_min']} MB/min, "
                f"R² {result['r2']}: {result['verdict']} ({result['reason']})"
            )
        for allocator in result.get("top_allocators", [])[:20]:
            self.stdout.write(
                f"{allocator['bytes']:>14,} B {allocator['count']:>9,} allocations  "
                f"{allocator['function']} ({allocator['file']}:{allocator['line']})"
            )
        for thread in result.get("threads", []):
            self.stdout.write(f"Thread {thread['id']} {thread['name']!r}")
            for frame in thread["stack"]:
                self.stdout.write(f"    {frame['function']} ({frame['file']}:{frame['line']})")
        for name in capture.artefacts:
            self.stdout.write(f"{name}: {services.artefact_path(capture, name)}")


def cli_result(capture: ProfileCapture) -> dict[str, Any]:
    """The capture as the CLI's --json prints it."""
    result: dict[str, Any] = {"capture": capture.pk, "kind": capture.kind, "pid": capture.pid}
    if capture.kind == "cpu":
        result["samples"] = capture.summary.get("samples", 0)
        result["top_functions"] = [
            {
                "function": f.function,
                "file": f.file,
                "line": f.line,
                "self_pct": round(f.self_pct, 2),
                "total_pct": round(f.total_pct, 2),
            }
            for f in capture.function_stats.all()
        ]
    elif capture.kind == "memory":
        summary = capture.summary
        result.update(
            samples=summary.get("samples", 0),
            slope_mb_per_min=summary.get("slope_mb_per_min"),
            r2=summary.get("r2"),
            verdict=capture.verdict,
            reason=summary.get("reason", ""),
            lower_mb_per_min=summary.get("lower_mb_per_min"),
            upper_mb_per_min=summary.get("upper_mb_per_min"),
        )
    elif capture.kind == "threads":
        result["threads"] = capture.summary.get("threads", [])
    elif capture.kind == "allocations":
        summary = capture.summary
        result.update(
            allocated_bytes=summary.get("allocated_bytes"),
            peak_bytes=summary.get("peak_bytes"),
            allocations=summary.get("allocations"),
            top_allocators=summary.get("top_by_bytes", []),
            top_by_count=summary.get("top_by_count", []),
            leaks=summary.get("leaks", []),
            leaked_bytes=summary.get("leaked_bytes"),
        )
    else:
        result.update(capture.summary)
    result["artefacts"] = sorted(capture.artefacts)
    return result
