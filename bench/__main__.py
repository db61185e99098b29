"""Run the benchmarks: `python -m bench` (all) or `python -m bench NAME ...`
(`make bench BENCH=NAME`).

Each benchmark is a module of this package with a `main() -> int` that prints its own table
(side-by-side ratios measured in one run, since the machine is shared and noisy) and PASS/FAIL
against its goal. Benchmarks never run as part of `make test`. What each prints is also
stored, with the commit and the machine it ran on, in var/bench-results/ (bench/results.py).
"""

from __future__ import annotations

import importlib
import sys
import time

from bench import results

BENCHMARKS = (
    "loadgen",
    "flow",
    "cache",
    "dashboard",
    "queryopt_capture",
    "queryopt_batch",
    "queryopt_tuning",
    "queryopt_queries_page",
    "profiling_overhead",
    "shards",
    "agent_overhead",
    "monitor_overhead",
    "reference_flow",
)


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"== {name}: not present yet")
            continue
        print(f"\n== bench {name}")
        started = time.monotonic()
        tee = results.Tee(sys.stdout)
        sys.stdout = tee
        try:
            code = module.main() or 0
        finally:
            sys.stdout = tee.stream
        seconds = time.monotonic() - started
        status = max(status, code)
        path = results.write(name, tee.copy.getvalue(), code, seconds)
        print(f"== {name} took {seconds:.0f}s; figures in {path.relative_to(results.ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
