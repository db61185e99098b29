"""The tuning loop, measured: the emissions by-site endpoint before and after the advisor's index.

In a database of its own (`offgridperf_bench_tuning`, created and migrated here) with the demo
data (200,000 activities over 60 sites, as `make run` seeds them), the emissions target is
served by gunicorn on a free loopback port, as `runall` serves it. Then:

  1. a load test (the engine as a library, closed model, 10 users, 10 s) on
     GET /api/activities/by-site/ over several sites, between two pg_stat_statements snapshots;
  2. `queryopt.recommend.recommend` on the database, registered as a target (own_database);
     its recommendation on emissions_activity that leads with `site` is applied as written
     (CREATE INDEX CONCURRENTLY), then ANALYZE;
  3. the same load test again, between two more snapshots;
  4. the index is dropped, so the next run starts from the same schema.

Prints requests, req/s, p50 and p95 before and after, their ratios, and the by-site query's
mean execution time that pg_stat_statements measured in each window. PASS when the advisor
recommended the index and the p95 after it is below the p95 before. When the advisor proposes
nothing for the by-site query, the loop is measured with BENCH_TUNING_FALLBACK_INDEX (by
default the index the advisor proves when the query names its ORDER BY columns), and FAILs.

    python -m bench queryopt_tuning
Environment: BENCH_TUNING_SECONDS (10), BENCH_TUNING_USERS (10), BENCH_TUNING_ACTIVITIES
(200000), BENCH_TUNING_FALLBACK_INDEX (an index statement; empty: no fallback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bench_env
from bench.dashboard import free_port

ROOT = Path(__file__).resolve().parent.parent

BENCH_DB = "offgridperf_bench_tuning"
TARGET_NAME = "bench-tuning"
TABLE = "emissions_activity"
SECONDS = float(os.environ.get("BENCH_TUNING_SECONDS", "10"))
USERS = int(os.environ.get("BENCH_TUNING_USERS", "10"))
ACTIVITIES = int(os.environ.get("BENCH_TUNING_ACTIVITIES", "200000"))
WARM_UP_SECONDS = 2.0
FALLBACK_INDEX = os.environ.get(
    "BENCH_TUNING_FALLBACK_INDEX",
    f'CREATE INDEX CONCURRENTLY ON "public"."{TABLE}" ("site", "kg_co2e" DESC NULLS LAST)',
)
# Big, middling and small sites of the demo's Zipf-like estate, the bigger ones asked more.
SITES = (("site-001", 4), ("site-003", 3), ("site-012", 3), ("site-025", 2), ("site-047", 1))
PAGE_SIZE = 20
# The indexes the emissions migrations create; any other index on the table is the loop's.
MODEL_INDEXES = ("emissions_activity_pkey", "activity_batch_line", "activity_date_brin")


@dataclass
class Measured:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    query_mean_ms: float | None  # pg_stat_statements' mean of the by-site query in the window


# -- outer process: database, then the measurement in a child with DATABASE_URL set ------------


def main() -> int:
    env = bench_env(BENCH_DB, "queryopt_tuning")
    # A child process, so that Django is set up on the bench database whatever ran before.
    return subprocess.call([sys.executable, "-m", "bench.queryopt_tuning"], cwd=ROOT, env=env)


# -- inner process ------------------------------------------------------------------------------


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed_demo() -> None:
    from emissions import seeding
    from emissions.models import Activity

    rows = Activity.objects.filter(batch__reference__startswith=seeding.SEED_PREFIX).count()
    if rows == ACTIVITIES:
        print(f"reusing the {ACTIVITIES:,} seeded activities in {BENCH_DB}")
        return
    started = time.monotonic()
    seeding.seed(ACTIVITIES)
    print(f"seeded {ACTIVITIES:,} activities in {time.monotonic() - started:.0f}s")


def fresh_target() -> Any:
    """The database as a target with no history: a previous run's query shapes, deltas and
    recommendations would be ranked with this run's (and keep the query text they were
    first stored with)."""
    from queryopt import services
    from queryopt.models import QueryTarget

    QueryTarget.objects.filter(name=TARGET_NAME).delete()
    target, _ = services.add_target(TARGET_NAME, services.own_database_dsn(), own_database=True)
    return target


def sql(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in autocommit (CREATE INDEX CONCURRENTLY needs it); the last one's rows."""
    import psycopg

    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def drop_loop_indexes(dsn: str) -> list[str]:
    """Drop every index on the table the migrations did not create (a previous run's)."""
    listed = sql(dsn, f"SELECT indexname FROM pg_indexes WHERE tablename = '{TABLE}'")  # noqa: S608
    names = [name for (name,) in listed if name not in MODEL_INDEXES]
    for name in names:
        sql(dsn, f'DROP INDEX CONCURRENTLY IF EXISTS "public"."{name}"')
    return names


def start_target(port: int) -> subprocess.Popen[bytes]:
    from bench.dashboard import start_gunicorn

    # As runall serves it: the emissions API's own URL conf, no login.
    os.environ["OFFGRIDPERF_ROLE"] = "target"
    try:
        return start_gunicorn(port)
    finally:
        del os.environ["OFFGRIDPERF_ROLE"]


def load(base: str, seconds: float) -> Any:
    from loadtests.engine import EngineConfig, Step, run

    steps = tuple(
        Step(
            site,
            "GET",
            f"/api/activities/by-site/?site={site}&page_size={PAGE_SIZE}",
            weight=weight,
        )
        for site, weight in SITES
    )
    config = EngineConfig(
        target_base_url=base,
        steps=steps,
        load_model="closed",
        users=USERS,
        duration_s=seconds,
        timeout_s=30,
        max_connections=USERS,
        abort_error_rate_pct=None,
    )
    return run(config)


def by_site_mean_ms(target: Any, snapshot: Any) -> float | None:
    """pg_stat_statements' mean time of the by-site query in the window `snapshot` closed."""
    delta = (
        snapshot.deltas.filter(
            shape__query_text__contains=f'FROM "{TABLE}" WHERE "{TABLE}"."site" = $1'
        )
        .order_by("-calls")
        .first()
    )
    return delta.mean_exec_time_ms if delta else None


def measured_window(base: str, target: Any) -> Measured:
    """Warm up, then one load test between two snapshots of the target."""
    from queryopt import services

    load(base, WARM_UP_SECONDS)
    services.take_snapshot(target)
    result = load(base, SECONDS)
    closing = services.take_snapshot(target)
    latency = result.latency
    return Measured(
        requests=result.requests,
        errors=result.errors,
        rps=result.requests / SECONDS,
        p50_ms=latency.value_at_percentile(50) / 1000 if latency.total_count else 0.0,
        p95_ms=latency.value_at_percentile(95) / 1000 if latency.total_count else 0.0,
        query_mean_ms=by_site_mean_ms(target, closing),
    )


def advised_statement(target: Any) -> tuple[str | None, str]:
    """The advisor's statement for the by-site query (or None) and a line saying what it said."""
    from queryopt import recommend

    advice = recommend.recommend(target)
    for rec in advice.advice.recommendations:
        if rec.table == TABLE and rec.columns[0] == "site":
            saving = f"{rec.saving_pct:.0f}%" if rec.saving_pct is not None else "not validated"
            return rec.statement, (
                f"advisor: {rec.statement}  (cost {rec.cost_before:,.0f} -> "
                f"{rec.cost_after or 0:,.0f}, saving {saving})"
            )
    others = "; ".join(f"{r.table} ({', '.join(r.columns)})" for r in advice.advice.recommendations)
    return None, f"advisor: nothing for the by-site query (other advice: {others or 'none'})"


def print_table(before: Measured, after: Measured, index: str) -> None:
    print(f"\nclosed model, {USERS} users, {SECONDS:g} s per run; index: {index}")
    print(
        f"{'':<8}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'query ms':>10}"
    )
    for name, row in (("before", before), ("after", after)):
        mean = f"{row.query_mean_ms:10.2f}" if row.query_mean_ms is not None else f"{'-':>10}"
        print(
            f"{name:<8}{row.requests:>9}{row.errors:>8}{row.rps:>9.1f}"
            f"{row.p50_ms:>9.2f}{row.p95_ms:>9.2f}{mean}"
        )
    print(
        f"ratio before/after: p95 {ratio(before.p95_ms, after.p95_ms)}, "
        f"p50 {ratio(before.p50_ms, after.p50_ms)}; req/s after/before "
        f"{ratio(after.rps, before.rps)}; "
        f"query mean {ratio(before.query_mean_ms, after.query_mean_ms)}"
    )


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.1f}x"


def run_bench() -> int:
    setup_django()
    seed_demo()
    target = fresh_target()
    dsn = target.dsn
    if dropped := drop_loop_indexes(dsn):
        print(f"dropped a previous run's index(es): {', '.join(dropped)}")
    sql(dsn, f"ANALYZE {TABLE}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_target(port)
    try:
        before = measured_window(base, target)
        statement, said = advised_statement(target)
        print(said)
        index = statement or FALLBACK_INDEX
        if not index:
            print("no index to apply (BENCH_TUNING_FALLBACK_INDEX is empty)  FAIL")
            return 1
        if statement is None:
            print(f"measuring with the fallback instead, not the advisor's: {index}")
        started = time.monotonic()
        sql(dsn, index, f"ANALYZE {TABLE}")
        print(f"applied and analysed in {time.monotonic() - started:.1f}s")
        after = measured_window(base, target)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        drop_loop_indexes(dsn)
    print_table(before, after, "the advisor's" if statement else "fallback (not the advisor's)")
    faster = after.p95_ms < before.p95_ms and not before.errors and not after.errors
    ok = faster and statement is not None
    reason = "" if statement else " (the advisor recommended nothing for the by-site query)"
    print(f"after-p95 < before-p95: {faster}  {'PASS' if ok else 'FAIL'}{reason}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_bench())
