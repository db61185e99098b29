"""App-side query capture: what timing every query costs (issue 10, "Capture overhead").

1. Per-query wall time of a simple indexed SELECT (primary-key lookup, one row fetched) through
   Django's cursor, capture off against on, in interleaved rounds so that the machine's noise
   falls on both sides alike: median and p99 µs, and the difference.
2. The analysis alone, per query: fingerprint (cached per distinct SQL string) plus the
   statistics update (counts, min/max, histogram slot, N+1 check) that the execute wrapper does
   after each query, median and p99 µs (goal: median < 200 µs; the seed's goal was 5 ms). For
   reference, the cost of a cold fingerprint (pglast, once per distinct SQL string) and of one
   flush of a window to the database.

Everything runs in a dedicated PostgreSQL database (`offgridperf_bench_qcapture`, created and
migrated here).

    python -m bench queryopt_capture                 # as `make bench` runs it
    BENCH_QCAPTURE_ROUNDS=10 python -m bench queryopt_capture
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench import bench_env
from stats import percentile_of

ROOT = Path(__file__).resolve().parent.parent

BENCH_DB = "offgridperf_bench_qcapture"
ROUNDS = int(os.environ.get("BENCH_QCAPTURE_ROUNDS", "30"))
QUERIES_PER_ROUND = 1000
# Queries per capture scope: a request of a typical size (the scope's start and end, and the
# flush, are outside the per-query timing: they are paid once per request, not per query).
QUERIES_PER_SCOPE = 20
TABLE_ROWS = 10_000
ANALYSIS_SAMPLES = 100_000
ANALYSIS_GOAL_US = 200.0
SELECT = "SELECT id, value FROM bench_capture_rows WHERE id = %s"


def main() -> int:
    env = bench_env(BENCH_DB, "queryopt_capture")
    env["QUERYOPT_CAPTURE"] = "1"
    # A child process, so that Django is set up on the bench database whatever ran before.
    return subprocess.call([sys.executable, "-m", "bench.queryopt_capture"], cwd=ROOT, env=env)


# -- inner process ------------------------------------------------------------------------------


def setup() -> None:
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_capture_rows (id integer PRIMARY KEY, value integer)"
        )
        cursor.execute("SELECT count(*) FROM bench_capture_rows")
        if cursor.fetchone()[0] != TABLE_ROWS:
            cursor.execute("TRUNCATE bench_capture_rows")
            cursor.execute(
                "INSERT INTO bench_capture_rows SELECT g, g * 7 FROM generate_series(1, %s) g",
                [TABLE_ROWS],
            )
            cursor.execute("ANALYZE bench_capture_rows")


def timed_queries(count: int, offset: int, captured: bool) -> list[float]:
    """Microseconds of `count` lookups; with capture on, in scopes of QUERIES_PER_SCOPE."""
    from django.db import connection

    from queryopt import capture

    samples: list[float] = []
    with connection.cursor() as cursor:
        for start in range(0, count, QUERIES_PER_SCOPE):
            scope = capture.capturing("bench lookups") if captured else None
            if scope is not None:
                scope.__enter__()
            try:
                for n in range(start, min(start + QUERIES_PER_SCOPE, count)):
                    began = time.perf_counter_ns()
                    cursor.execute(SELECT, [(offset + n) % TABLE_ROWS + 1])
                    cursor.fetchone()
                    samples.append((time.perf_counter_ns() - began) / 1000)
            finally:
                if scope is not None:
                    scope.__exit__(None, None, None)
    return samples


def bench_overhead() -> tuple[float, float]:
    from queryopt import capture

    print(
        f"\n-- per-query wall time, indexed SELECT through Django's cursor: {ROUNDS} interleaved "
        f"rounds of {QUERIES_PER_ROUND:,} queries each side"
    )
    timed_queries(500, 0, False)  # warm the connection, the plan and the fingerprint cache
    timed_queries(500, 0, True)
    off: list[float] = []
    on: list[float] = []
    for round_number in range(ROUNDS):
        # Alternate which side goes first, so that neither always meets a warmer machine.
        order = (False, True) if round_number % 2 == 0 else (True, False)
        for captured in order:
            samples = timed_queries(QUERIES_PER_ROUND, round_number * QUERIES_PER_ROUND, captured)
            (on if captured else off).extend(samples)
    capture.flush()
    off.sort()
    on.sort()
    print(f"{'capture':<10}{'median µs':>11}{'p95 µs':>10}{'p99 µs':>10}")
    levels = (50, 95, 99)
    off_q = [percentile_of(off, q) for q in levels]
    on_q = [percentile_of(on, q) for q in levels]
    for name, values in (
        ("off", off_q),
        ("on", on_q),
        ("on - off", [b - a for a, b in zip(off_q, on_q, strict=True)]),
    ):
        print(f"{name:<10}{values[0]:>11.1f}{values[1]:>10.1f}{values[2]:>10.1f}")
    return on_q[0] - off_q[0], on_q[2] - off_q[2]


def bench_analysis() -> bool:
    from django.test.utils import override_settings

    from queryopt import capture
    from queryopt.fingerprints import normalize_query

    print(
        f"\n-- analysis per query (fingerprint + statistics update), {ANALYSIS_SAMPLES:,} samples"
    )
    sqls = [
        SELECT,
        # Integers only: distinct SQL strings, as an app has a handful per view.
        *(f"SELECT id FROM bench_capture_rows WHERE value = %s AND id > {n}" for n in range(9)),  # noqa: S608
    ]
    with override_settings(QUERYOPT_SLOW_MS=3_600_000):
        scope = capture._Scope("bench analysis")
    for sql in sqls:
        scope.record(sql, [1], False, 150_000, None)  # warm: what repeats in a real app
    samples = []
    for n in range(ANALYSIS_SAMPLES):
        sql = sqls[n % len(sqls)]
        began = time.perf_counter_ns()
        scope.record(sql, [n], False, 100_000 + n, None)
        samples.append((time.perf_counter_ns() - began) / 1000)
    samples.sort()
    median, p99 = percentile_of(samples, 50), percentile_of(samples, 99)
    passed = median < ANALYSIS_GOAL_US
    verdict = "PASS" if passed else "FAIL"
    print(f"{'median µs':>10}{'p99 µs':>9}  verdict")
    print(f"{median:>10.2f}{p99:>9.2f}  {verdict} (median < {ANALYSIS_GOAL_US:g} µs)")

    cold = []
    for n in range(300):
        sql = f"SELECT id, value FROM bench_capture_rows WHERE id = %s AND value <> {n}"  # noqa: S608
        began = time.perf_counter_ns()
        normalize_query(sql)
        cold.append((time.perf_counter_ns() - began) / 1000)
    cold.sort()
    print(
        f"(reference: a cold fingerprint, pglast, once per distinct SQL string: median "
        f"{percentile_of(cold, 50):.0f} µs, p99 {percentile_of(cold, 99):.0f} µs)"
    )
    return passed


def bench_flush() -> None:
    from django.db import connection

    from queryopt import capture

    for fingerprints in (1, 20):
        with capture.capturing("bench flush"), connection.cursor() as cursor:
            for n in range(fingerprints):
                # Distinct column aliases: distinct fingerprints, as many windows to write.
                cursor.execute(f"SELECT id AS flush_probe_{n} FROM bench_capture_rows LIMIT 1")  # noqa: S608
        began = time.perf_counter()
        capture.flush()
        elapsed_ms = (time.perf_counter() - began) * 1000
        print(
            f"(reference: one flush of a window of {fingerprints} fingerprint(s): "
            f"{elapsed_ms:.1f} ms)"
        )


def run() -> int:
    setup()
    from queryopt import capture

    capture.reset()
    delta_p50, delta_p99 = bench_overhead()
    passed = bench_analysis()
    bench_flush()
    print(
        f"\ncapture adds {delta_p50:.1f} µs at the median and {delta_p99:.1f} µs at p99 per query; "
        f"analysis {'within' if passed else 'over'} its {ANALYSIS_GOAL_US:g} µs goal"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run())
