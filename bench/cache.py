"""The cache layer and the emissions workload: latency, ingest rate, steady test on vs off.

1. Cache get latency on loopback Redis (goal: p99 < 1 ms), one operation at a time.
2. Batch ingest, CSV text to committed rows (parse, validate, COPY): 100,000 and 1,000,000
   rows (goal: >= 100,000 rows/s).
3. The `emissions-steady` load test (open model, 200 requests/s, 60 s) against the target
   served by gunicorn as `make run` serves it, on 200,000 seeded activities, driven by our own
   engine (loadtests.engine): hit rate after a warm-up (goal: > 80%), then p95 with the
   cache on and off, side by side.

Everything lands in a dedicated PostgreSQL database (`offgridperf_bench_cache`, created and
migrated here). The cache keys and metrics go to REDIS_URL's database; its emissions keys and
cache metrics are cleared first.

    python -m bench cache                            # as `make bench` runs it
    BENCH_CACHE_STEADY_SECONDS=20 python -m bench cache   # a shorter steady test
"""

from __future__ import annotations

import csv
import io
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from bench import bench_env
from stats import percentile_of

ROOT = Path(__file__).resolve().parent.parent

BENCH_DB = "offgridperf_bench_cache"
GET_SAMPLES = 20_000
GET_GOAL_MS = 1.0
INGEST_SIZES = (100_000, 1_000_000)
INGEST_GOAL_RPS = 100_000
SEED_ACTIVITIES = 200_000
HIT_RATE_GOAL = 0.80
WARM_UP_S = 10.0
STEADY_S = float(os.environ.get("BENCH_CACHE_STEADY_SECONDS", "60"))


# -- outer process: database, then the measurement in a child with DATABASE_URL set ------------


def main() -> int:
    if not os.environ.get("REDIS_URL"):
        print("the cache bench needs Redis: set REDIS_URL (make bench does)")
        return 1
    env = bench_env(BENCH_DB, "cache")
    # A child process, so that Django is set up on the bench database whatever ran before.
    return subprocess.call([sys.executable, "-m", "bench.cache"], cwd=ROOT, env=env)


# -- inner process ------------------------------------------------------------------------------


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_get_latency() -> bool:
    from django.core.cache import caches

    from emissions.cache import BATCH
    from offgridperf import cache

    print(f"\n-- cache operation latency, loopback Redis, {GET_SAMPLES:,} samples each")
    value = {"id": 1, "status": "done", "scopes": [{"scope": s, "kg_co2e": 1.5} for s in (1, 2, 3)]}
    BATCH.set("bench:detail", value)
    BATCH.set_many({f"bench:{n}": value for n in range(50)})
    raw = caches["default"]
    raw.set("bench:raw", value)
    keys = [f"bench:{n}" for n in range(50)]
    operations = {
        "layer get (hit)": lambda: BATCH.get("bench:detail"),
        "layer get (miss)": lambda: BATCH.get("bench:absent"),
        "layer get_many (50 keys)": lambda: BATCH.get_many(keys),
        "django-redis get": lambda: raw.get("bench:raw"),
    }
    ok = True
    print(f"{'operation':<28}{'p50 ms':>9}{'p99 ms':>9}  verdict")
    for name, operation in operations.items():
        for _ in range(500):  # warm the connection and the code paths
            operation()
        samples = []
        for _ in range(GET_SAMPLES):
            started = time.perf_counter_ns()
            operation()
            samples.append((time.perf_counter_ns() - started) / 1e6)
        samples.sort()
        p50, p99 = percentile_of(samples, 50), percentile_of(samples, 99)
        line = f"{name:<28}{p50:>9.3f}{p99:>9.3f}"
        if name.startswith("layer get ("):
            passed = p99 < GET_GOAL_MS
            ok = ok and passed
            line += f"  {verdict(passed)} (p50 and p99 < {GET_GOAL_MS:g} ms)"
        print(line)
    cache.clear_all()
    return ok


def csv_document(rows: int) -> str:
    from emissions.seeding import generate_rows

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "category", "activity_type", "quantity", "unit", "date", "site"])
    for row in generate_rows(random.Random(rows), date(2024, 6, 1), rows):
        writer.writerow(row[1:])
    return out.getvalue()


def bench_ingest() -> bool:
    from emissions import rows as row_parsing
    from emissions import services
    from emissions.models import ActivityBatch

    print(
        "\n-- batch ingest as the upload endpoint does it: CSV text -> validate -> COPY -> commit"
    )
    print(f"{'rows':>10}{'seconds':>9}{'rows/s':>10}  verdict")
    ok = True
    ActivityBatch.objects.filter(reference__startswith="bench-ingest").delete()
    for size in INGEST_SIZES:
        text = csv_document(size)
        started = time.perf_counter()
        info = services.BatchInfo("Bench Ltd", "2024-06", f"bench-ingest-{size}")
        batch = services.create_batch(info, row_parsing.CsvUpload(text))
        elapsed = time.perf_counter() - started
        assert batch.row_count == size, batch.row_count
        rate = size / elapsed
        passed = rate >= INGEST_GOAL_RPS
        ok = ok and passed
        print(
            f"{size:>10,}{elapsed:>9.2f}{rate:>10,.0f}  "
            f"{verdict(passed)} (>= {INGEST_GOAL_RPS:,} rows/s)"
        )
        batch.delete()
    text = csv_document(INGEST_SIZES[0])
    started = time.perf_counter()
    row_parsing.parse_csv(text)
    rate = INGEST_SIZES[0] / (time.perf_counter() - started)
    print(
        f"(for reference: validating into row objects, as JSON and SQLite ingest do: "
        f"{rate:,.0f} rows/s)"
    )
    return ok


def seed_workload() -> None:
    from django.core.management import call_command
    from django.db import connection

    from emissions.models import Activity

    if Activity.objects.filter(batch__reference__startswith="seed-").count() == SEED_ACTIVITIES:
        print(f"\nreusing the {SEED_ACTIVITIES:,} seeded activities in {BENCH_DB}")
    else:
        print()
        call_command("seed_emissions", activities=SEED_ACTIVITIES)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE emissions_activity")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def target_argv(port: int) -> list[str]:
    """The target exactly as `make run` starts it (runall), on another port."""
    from offgridperf.management.commands.runall import product_processes

    spec = next(spec for spec in product_processes("127.0.0.1", 8000) if spec.name == "target")
    argv = list(spec.argv)
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [*argv, "--log-level", "warning"]


def start_target(port: int, *, cache_enabled: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CACHE_ENABLED": "1" if cache_enabled else "0"}
    proc = subprocess.Popen(target_argv(port), cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the target exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/", timeout=2):
                return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the target did not answer within 30 s")


def stop_target(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # graceful: workers flush their cache metrics on the way out
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def engine_config(port: int, duration_s: float) -> Any:
    import json
    from pathlib import Path

    from loadtests.engine import EngineConfig

    # The reference document is the engine's own dict (plus name, thresholds, tags).
    document = Path(__file__).resolve().parent.parent / "emissions/loadtests/emissions-steady.json"
    steady = json.loads(document.read_text())
    steady["target_base_url"] = f"http://127.0.0.1:{port}"
    config = EngineConfig.from_dict(
        {**steady, "duration_s": duration_s, "abort_error_rate_pct": None}
    )
    steady = {**steady, **{f"threshold_{k}": v for k, v in steady["thresholds"].items()}}
    return config, steady


def drive(port: int, duration_s: float) -> dict[str, Any]:
    from loadtests.engine import run

    config, steady = engine_config(port, duration_s)
    result = run(config)
    latency = result.latency
    return {
        "requests": result.requests,
        "errors": result.errors,
        "error_rate_pct": result.error_rate_pct,
        "rps": result.throughput_rps,
        "p50_ms": latency.value_at_percentile(50) / 1000 if latency.total_count else float("nan"),
        "p95_ms": latency.value_at_percentile(95) / 1000 if latency.total_count else float("nan"),
        "p99_ms": latency.value_at_percentile(99) / 1000 if latency.total_count else float("nan"),
        "valid": result.health.get("valid", True),
        "threshold_p95_ms": steady["threshold_p95_ms"],
        "threshold_error_rate_pct": steady["threshold_error_rate_pct"],
        "per_step": result.per_step,
        "errors_by_class": {name: e["count"] for name, e in result.errors_by_class.items()},
    }


def bench_steady() -> bool:
    from offgridperf import cache

    seed_workload()
    cache.clear_all()
    port = free_port()
    print(
        f"\n-- emissions-steady: open model, 200 requests/s, {STEADY_S:g} s, target on :{port} "
        "(gunicorn as make run starts it), engine: loadtests.engine"
    )
    proc = start_target(port, cache_enabled=True)
    try:
        drive(port, WARM_UP_S)  # warm-up: fills the cache
    finally:
        stop_target(proc)
    cache.reset_metrics()
    runs: dict[str, dict[str, Any]] = {}
    for label, enabled in (("cache on", True), ("cache off", False)):
        proc = start_target(port, cache_enabled=enabled)
        try:
            runs[label] = drive(port, STEADY_S)
        finally:
            stop_target(proc)
        if enabled:
            figures = cache.figures()
    lookups = sum(f.lookups for f in figures.values())
    hits = sum(f.counters["hits"] for f in figures.values())
    hit_rate = hits / lookups if lookups else 0.0
    print(f"{'':<11}{'requests':>9}{'rps':>8}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for label, figures_run in runs.items():
        print(
            f"{label:<11}{figures_run['requests']:>9}{figures_run['rps']:>8.1f}"
            f"{figures_run['errors']:>8}{figures_run['p50_ms']:>9.1f}{figures_run['p95_ms']:>9.1f}"
            f"{figures_run['p99_ms']:>9.1f}"
            + ("" if figures_run["valid"] else "  (generator overloaded: figures suspect)")
        )
    on, off = runs["cache on"], runs["cache off"]
    print(f"p95 ratio off/on: {off['p95_ms'] / on['p95_ms']:.1f}x")
    for label, figures_run in runs.items():
        if figures_run["errors_by_class"]:
            print(f"errors ({label}): {figures_run['errors_by_class']}")
        if figures_run["errors_by_class"].get("dropped"):
            print(f"  ({label}: the target could not keep up with 200 requests/s; latency grew")
            print("   with the backlog, so this p95 measures saturation, not a single request)")
    print(f"\n{'step (p50 / p95 ms)':<24}{'cache on':>18}{'cache off':>20}")
    for name, step in on["per_step"].items():
        other = off["per_step"].get(name, {})
        print(
            f"{name:<24}{step['p50_ms']:>8.1f} /{step['p95_ms']:>8.1f}"
            f"{other.get('p50_ms', 0):>10.1f} /{other.get('p95_ms', 0):>8.1f}"
        )
    print("\nhit rate by strategy (measured run, after warm-up):")
    for name, figure in figures.items():
        rate = "–" if figure.hit_rate is None else f"{100 * figure.hit_rate:.1f}%"
        print(
            f"  {name:<10}{rate:>7}  ({figure.counters['hits']:,} hits, "
            f"{figure.counters['misses']:,} misses, op p50 {figure.latency_ms(0.5) or 0:.3f} ms)"
        )
    hit_ok = hit_rate > HIT_RATE_GOAL
    print(f"overall hit rate {100 * hit_rate:.1f}%  {verdict(hit_ok)} (> {HIT_RATE_GOAL:.0%})")
    passes = (
        on["p95_ms"] <= on["threshold_p95_ms"]
        and on["error_rate_pct"] <= on["threshold_error_rate_pct"]
    )
    print(
        f"cache on vs the definition's thresholds (p95 <= {on['threshold_p95_ms']:g} ms, errors "
        f"<= {on['threshold_error_rate_pct']:g}%): {verdict(passes)}"
    )
    cache.clear_all()
    return hit_ok and passes


def run_bench() -> int:
    setup_django()
    results = [bench_get_latency(), bench_ingest(), bench_steady()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(run_bench())
