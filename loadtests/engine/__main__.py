"""Run the engine alone, without Django (benchmarks, quick checks).

  python -m loadtests.engine URL (--users N | --rate R) --duration S
      [--connections C] [--timeout T] [--think MIN[,MAX]] [--insecure] [--method M]
      [--json [--histograms]]
  python -m loadtests.engine --document FILE [--try-once] [--json [--histograms]]

--document runs a load-test document (JSON, e.g. from `loadtest export`; a flow's data-set
rows go in its "data_rows"); --try-once runs one iteration of it and prints each request
and response as JSON instead. The load flags (--users to --insecure) are `manage.py loadtest
url`'s: one declaration, in loadtests/engine/flags.py.

Prints a summary (JSON with --json, including the process's peak RSS) and exits 0 when the
run completed, 1 when it was aborted, 2 on a bad command line.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from loadtests.engine.config import MAX_DOCUMENT_BYTES, EngineConfig, Step, capped
from loadtests.engine.flags import MISSING_RULE, FlagError, add_load_flags, load_fields
from loadtests.engine.flow import try_once
from loadtests.engine.jsoninput import JsonInputInvalid, parse
from loadtests.engine.results import IntervalSnapshot, Outcome
from loadtests.engine.runner import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests.engine", description=__doc__)
    parser.add_argument("url", nargs="?", help="the URL to request, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--document", help="a load-test document (JSON file) to run instead")
    parser.add_argument(
        "--try-once", action="store_true", help="with --document: one iteration, shown"
    )
    add_load_flags(parser)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--no-abort", action="store_true", help="never stop on errors")
    parser.add_argument("--progress", action="store_true", help="a line per second on stderr")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--histograms", action="store_true", help="keep the encoded histograms in the JSON"
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.document is None:
        if args.url is None:
            parser.error(f"give URL and its flags ({MISSING_RULE}), or --document FILE")
        try:
            args.load = load_fields(vars(args))
        except FlagError as exc:
            parser.error(str(exc))
    return args


def document_config(path: str) -> EngineConfig:
    """The engine config of a load-test document file; raises JsonInputInvalid for a file
    over MAX_DOCUMENT_BYTES, too deep, or holding Infinity, NUL or lone surrogates."""
    with open(path, "rb") as handle:
        return EngineConfig.from_dict(parse(handle.read(MAX_DOCUMENT_BYTES + 1), root=path))


def config_from(args: argparse.Namespace) -> EngineConfig:
    parts = urlsplit(args.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return EngineConfig(
        target_base_url=f"{parts.scheme}://{parts.netloc}",
        steps=(Step(name="request", method=args.method.upper(), path=path),),
        abort_error_rate_pct=None if args.no_abort else 5.0,
        **args.load,
    )


def progress(snapshot: IntervalSnapshot) -> None:
    print(
        f"[{snapshot.index + 1:>4}s] {snapshot.throughput_rps:>9.1f} req/s  "
        f"{snapshot.errors:>5} err  p50 {snapshot.latency_p50_ms:7.2f} ms  "
        f"p99 {snapshot.latency_p99_ms:7.2f} ms  "
        f"cpu {snapshot.cpu_pct:5.1f}%",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = document_config(args.document) if args.document else config_from(args)
    except JsonInputInvalid as exc:
        problems = exc.problems
    else:
        problems = capped(config.validate())
    if problems:
        for field, message in problems:
            print(f"{field}: {message}", file=sys.stderr)
        return 2
    if args.try_once:
        print(json.dumps(try_once(config, timeout_s=max(30.0, config.timeout_s * 10)), indent=2))
        return 0
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    result = run(config, sink=progress if args.progress else None, cancel=cancel)
    summary: dict[str, Any] = result.to_dict()
    if not args.histograms:
        summary.pop("latency_hist")
        summary.pop("service_hist")
    # ru_maxrss is in kilobytes on Linux.
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_text(summary)
    return 1 if result.status == Outcome.ABORTED else 0


def print_text(summary: dict[str, Any]) -> None:
    latency, service = summary["latency_ms"], summary["service_time_ms"]
    print(f"status      {summary['status']} {summary['reason']}".rstrip())
    print(f"requests    {summary['requests']} in {summary['duration_s']} s")
    print(f"throughput  {summary['throughput_rps']} req/s")
    print(f"errors      {summary['errors']} {summary['errors_by_class'] or ''}".rstrip())
    for name, values in (("latency", latency), ("service", service)):
        print(
            f"{name:<11} p50 {values['p50']} ms  p90 {values['p90']} ms  p99 {values['p99']} ms"
            f"  max {values['max']} ms"
        )
    health = summary["health"]
    verdict = "valid" if health["valid"] else f"INVALID: {health['invalid_reason']}"
    print(f"generator   cpu {health['cpu_pct_mean']}%  lag p99 {health['loop_lag_ms_p99']} ms  "
          f"{verdict}")  # fmt: skip
    print(f"peak RSS    {summary['peak_rss_mb']} MB")


if __name__ == "__main__":
    sys.exit(main())
