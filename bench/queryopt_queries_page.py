"""The Queries page (`/queries/`) with a week of app-side statistics windows.

Seeds a dedicated PostgreSQL database (`offgridperf_bench_queries`, created and migrated here)
with 1,000,000 QueryStatWindow rows over the last 7 days (60 query shapes, 4 origins, a fifth
of them during 40 load-test runs, each window a few calls as the capture's one-second windows
are), rolls them up (`queryopt.rollups.roll_up_all`, timed), then times the page in-process
with Django's test client as a logged-in user, one request at a time: the median of
BENCH_QUERIES_PAGE_REQUESTS (10) views per variant is its server-side time. For comparison it
times, once, what the page did before roll-ups: grouping every raw window (the first of its
queries; merging the shown rows' histograms came on top). Goal: every variant under 200 ms.

    python -m bench queryopt_queries_page        # as `make bench` runs it
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import bench_env
from stats import percentile_of

ROOT = Path(__file__).resolve().parent.parent

BENCH_DB = "offgridperf_bench_queries"
WINDOWS = 1_000_000
DAYS = 7
SHAPES = 60
ORIGINS = ("GET emissions.views.batches", "GET emissions.views.by_site", "POST upload", "task x")
RUNS = 40
RUN_SHARE = 0.2
GOAL_MS = 200.0
REQUESTS = int(os.environ.get("BENCH_QUERIES_PAGE_REQUESTS", "10"))
TARGET_NAME = "bench-queries"


def main() -> int:
    env = bench_env(BENCH_DB, "queryopt_queries_page")
    env["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    return subprocess.call([sys.executable, "-m", "bench.queryopt_queries_page"], cwd=ROOT, env=env)


# -- inner process ------------------------------------------------------------------------------


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)


def seeded() -> bool:
    from queryopt.models import QueryStatWindow, QueryTarget

    target = QueryTarget.objects.filter(name=TARGET_NAME).first()
    # The page's own queries are captured too (on the app's database, not this target).
    windows = QueryStatWindow.objects.filter(shape__target=target)
    return target is not None and windows.count() == WINDOWS


def seed() -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.dashboard import fake_run, sample_histograms
    from loadtests.models import LoadTestDefinition, LoadTestRun
    from queryopt.models import QueryShape, QueryTarget
    from stats.histogram import histogram_of

    print(f"seeding {WINDOWS:,} statistics windows over {DAYS} days into {BENCH_DB} ...")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE queryopt_querystatwindow, queryopt_querystatrollup, "
            "queryopt_statrollupstate, queryopt_queryshape, queryopt_querytarget, "
            "loadtests_loadtestrun, loadtests_loadtestdefinition RESTART IDENTITY CASCADE"
        )
    rng = random.Random(18)
    # A window holds the few calls of one second of one process: small histograms.
    shapes = [[int(rng.lognormvariate(7.5, 0.8)) for _ in range(1 + i % 6)] for i in range(64)]
    histograms = [(len(s), sum(s) / 1000, histogram_of(s)) for s in shapes]
    rows = [
        (
            calls,
            0,
            total_ms,
            h.min / 1000,
            h.max / 1000,
            h.value_at_percentile(95) / 1000,
            h.value_at_percentile(99) / 1000,
            h.encode(),
        )
        for calls, total_ms, h in histograms
    ]
    now = timezone.now()
    start = now - timedelta(days=DAYS)
    with transaction.atomic():
        target = QueryTarget.objects.create(name=TARGET_NAME, dsn="host=127.0.0.1 dbname=x")
        shapes = QueryShape.objects.bulk_create(
            QueryShape(target=target, fingerprint=f"bench-{i}", query_text=f"SELECT {i}")
            for i in range(SHAPES)
        )
        definition = LoadTestDefinition.objects.create(
            name="bench queries", target_base_url="http://127.0.0.1:8001"
        )
        runs = LoadTestRun.objects.bulk_create(
            fake_run(definition, i, sample_histograms()) for i in range(RUNS)
        )
    span_s = DAYS * 86400
    run_span_s = span_s / RUNS
    # The shape's column kept its first name, fingerprint_id (see queryopt migration 0006).
    copy_sql = (
        "COPY queryopt_querystatwindow (fingerprint_id, window_start, window_end, origin, run_id,"
        " calls, errors, total_ms, min_ms, max_ms, p95_ms, p99_ms, histogram) FROM STDIN"
    )
    connection.ensure_connection()
    with connection.connection.cursor() as raw, raw.copy(copy_sql) as copy:
        for i in range(WINDOWS):
            offset = i * span_s / WINDOWS
            at = start + timedelta(seconds=offset)
            slot = int(offset / run_span_s)
            in_run = (offset - slot * run_span_s) < run_span_s * RUN_SHARE
            copy.write_row(
                (
                    shapes[rng.randrange(SHAPES)].pk,
                    at,
                    at + timedelta(seconds=1),
                    ORIGINS[rng.randrange(len(ORIGINS))],
                    runs[slot].pk if in_run else None,
                    *rows[i % len(rows)],
                )
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def logged_in_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", None, None)
    client = Client()
    client.force_login(user)
    return client


def timed(client: Any, url: str, requests: int = REQUESTS) -> tuple[float, int]:
    """The median time (ms) of `requests` views of `url`, and the last status."""
    client.get(url)  # warm: templates, connections
    times, status = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        status = client.get(url).status_code
        times.append((time.perf_counter() - started) * 1000)
    return percentile_of(times, 50) or 0.0, status


def raw_grouping_ms() -> float:
    """What the page's first query cost before roll-ups: every window grouped."""
    from django.db.models import Max, Sum

    from queryopt.models import QueryStatWindow

    started = time.perf_counter()
    list(
        QueryStatWindow.objects.values("shape_id", "origin")
        .annotate(calls=Sum("calls"), total=Sum("total_ms"), p95=Max("p95_ms"))
        .order_by()
    )
    return (time.perf_counter() - started) * 1000


def old_merge_estimate_s(sample: int = 2000) -> float:
    """What merging every shown window's histogram the old way (decode, then merge each) would
    take for all the windows, from the time of `sample` of them."""
    from queryopt.models import QueryStatWindow
    from stats.histogram import Histogram, merge_all

    encoded = list(QueryStatWindow.objects.values_list("histogram", flat=True)[:sample])
    started = time.perf_counter()
    merge_all(Histogram.decode(text) for text in encoded)
    return (time.perf_counter() - started) / len(encoded) * WINDOWS


def inner() -> int:
    setup_django()
    from django.utils import timezone

    from loadtests.models import LoadTestRun
    from queryopt import rollups
    from queryopt.models import QueryStatRollup, StatRollupState

    if not seeded():
        started = time.monotonic()
        seed()
        print(f"seeded in {time.monotonic() - started:.0f}s")
    if os.environ.get("BENCH_QUERIES_PAGE_REROLL", "1") == "1":
        QueryStatRollup.objects.all().delete()
        StatRollupState.objects.all().delete()
    started = time.monotonic()
    rolled = rollups.roll_up_all(now=timezone.now() + timedelta(minutes=10))
    roll_s = time.monotonic() - started
    print(
        f"rolled up {rolled:,} windows into {QueryStatRollup.objects.count():,} rows in "
        f"{roll_s:.0f}s ({rolled / max(roll_s, 1e-9):,.0f} windows/s)"
    )
    client = logged_in_client()
    today = timezone.localdate()
    run = LoadTestRun.objects.order_by("pk")[RUNS // 2]
    variants = {
        "list (total)": "/queries/",
        "list (p95)": "/queries/?sort=p95",
        "last 2 days": f"/queries/?since={today - timedelta(days=1)}&until={today}",
        "one origin": f"/queries/?origin={ORIGINS[1].replace(' ', '+')}",
        "one run": f"/queries/?run={run.pk}",
    }
    print(f"before roll-ups: every raw window grouped (the page's first query) "
          f"{raw_grouping_ms():,.0f} ms, and their histograms merged the old way, "
          f"estimated from 2,000: {old_merge_estimate_s():,.0f} s")  # fmt: skip
    print(f"{'variant':<16}{'median ms':>12}  status")
    worst = 0.0
    for name, url in variants.items():
        median_ms, status = timed(client, url)
        worst = max(worst, median_ms if status == 200 else float("inf"))
        print(f"{name:<16}{median_ms:>12.1f}  {status}")
    verdict = "PASS" if worst < GOAL_MS else "FAIL"
    print(f"{verdict}: slowest variant {worst:.0f} ms (goal < {GOAL_MS:.0f} ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(inner())
