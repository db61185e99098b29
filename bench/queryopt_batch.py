"""Batched execution (queryopt.batch) against row-by-row `execute`, side by side.

A 5-column table (bigint primary key, int, text, double, timestamptz) in its own PostgreSQL
database (`offgridperf_bench_batch`, on DATABASE_URL's server, created here):

- row by row: one `cursor.execute` per row, all in one transaction (the kindest case for it:
  a commit per row would be slower still), on 10,000 rows, rows/s extrapolated;
- executemany in pipeline mode (`execute_batches`, 1,000 rows a batch), 100,000 rows;
- COPY (`copy_rows`, binary, 1,000 rows a batch, the default), 100,000 rows;
- for comparison, COPY with 10,000 rows a batch: a tenth of the commits.

Each method runs BENCH_BATCH_ROUNDS times (3), interleaved, on an emptied table; the best
round counts. PASS when COPY stores >= 100,000 rows/s.

    python -m bench queryopt_batch
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench import bench_database_url, ensure_database
from queryopt.batch import copy_rows, execute_batches

BENCH_DB = "offgridperf_bench_batch"
ROWS = 100_000
ROW_BY_ROW_ROWS = 10_000
ROUNDS = int(os.environ.get("BENCH_BATCH_ROUNDS", "3"))
BIG_BATCH = 10_000  # for comparison: fewer commits (each waits for its WAL flush)
GOAL_RPS = 100_000
SEED_GOAL_RPS = 10_000
TABLE = "bench_readings"
COLUMNS = ("id", "sensor", "site", "value", "taken")
INSERT = f"INSERT INTO {TABLE} (id, sensor, site, value, taken) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608
START = datetime(2026, 1, 1, tzinfo=UTC)

Row = tuple[int, int, str, float, datetime]


def make_rows(count: int) -> list[Row]:
    return [
        (n, n % 5000, f"site-{n % 40}", (n * 7919) % 1000 / 10, START + timedelta(minutes=n))
        for n in range(count)
    ]


def reset_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, sensor integer NOT NULL, "
        "site text NOT NULL, value double precision NOT NULL, taken timestamptz NOT NULL)"
    )


def row_by_row(conn: psycopg.Connection[Any], rows: list[Row]) -> tuple[int, float]:
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cursor:
        for row in rows:
            cursor.execute(INSERT, row)
    return len(rows), time.perf_counter() - started


def pipelined(conn: psycopg.Connection[Any], rows: list[Row]) -> tuple[int, float]:
    report = execute_batches(conn, INSERT, rows)
    assert not report.failed_batches, report.failed_batches
    return report.ok_rows, report.seconds


def copied(conn: psycopg.Connection[Any], rows: list[Row]) -> tuple[int, float]:
    report = copy_rows(conn, TABLE, COLUMNS, rows)
    assert not report.failed_batches, report.failed_batches
    return report.ok_rows, report.seconds


def copied_big_batches(conn: psycopg.Connection[Any], rows: list[Row]) -> tuple[int, float]:
    report = copy_rows(conn, TABLE, COLUMNS, rows, batch_size=BIG_BATCH)
    assert not report.failed_batches, report.failed_batches
    return report.ok_rows, report.seconds


METHODS: tuple[tuple[str, int, Callable[..., tuple[int, float]]], ...] = (
    ("row-by-row execute", ROW_BY_ROW_ROWS, row_by_row),
    ("executemany, pipeline", ROWS, pipelined),
    ("COPY", ROWS, copied),
    (f"COPY, {BIG_BATCH:,}-row batches", ROWS, copied_big_batches),
)


def commit_ms(conn: psycopg.Connection[Any], samples: int = 100) -> float:
    """Median time of a one-row transaction: the floor under every batch's commit."""
    conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (n int)")  # logged, as real ones are
    times = []
    for n in range(samples):
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("INSERT INTO bench_commit VALUES (%s)", (n,))
        times.append(time.perf_counter() - started)
    conn.execute("DROP TABLE bench_commit")
    return sorted(times)[samples // 2] * 1000


def measure(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """Best rows/s of each method over the rounds."""
    data = make_rows(ROWS)
    best = dict.fromkeys((name for name, _, _ in METHODS), 0.0)
    for round_number in range(1, ROUNDS + 1):
        for name, count, run in METHODS:
            reset_table(conn)
            stored, seconds = run(conn, data[:count])
            got = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # noqa: S608
            assert stored == got == count, (name, stored, got)
            rate = stored / seconds
            best[name] = max(best[name], rate)
            print(f"  round {round_number}  {name:<28} {stored:>7,} rows  {rate:>11,.0f} rows/s")
    return best


def main() -> int:
    url = bench_database_url(BENCH_DB, "queryopt_batch")
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        print(f"{ROWS:,} rows of a 5-column table (row by row: {ROW_BY_ROW_ROWS:,}, extrapolated)")
        best = measure(conn)
        floor_ms = commit_ms(conn)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    base = best["row-by-row execute"]
    print(f"\n  {'method':<28} {'rows/s (best)':>14} {'x row-by-row':>13}")
    for name, rate in best.items():
        print(f"  {name:<28} {rate:>14,.0f} {rate / base:>12.1f}x")
    copy_rps = best["COPY"]
    print(
        f"  a durable commit: {floor_ms:.2f} ms (median), so 1,000-row batches cannot pass "
        f"{1000 / floor_ms * 1000:,.0f} rows/s here"
    )
    print(f"  COPY / executemany pipeline: {copy_rps / best['executemany, pipeline']:.1f}x")
    ok = copy_rps >= GOAL_RPS
    print(
        f"\n{'PASS' if ok else 'FAIL'}: batched (COPY) {copy_rps:,.0f} rows/s, "
        f"goal >= {GOAL_RPS:,} (the seed's goal: >= {SEED_GOAL_RPS:,})"
    )
    return 0 if ok else 1
