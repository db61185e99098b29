"""The Prometheus families of /metrics, read from the database and Redis at scrape time.

Why a collector rather than counters in each process (prometheus_client's multiprocess
mode): the figures already live in shared stores. Runs, their requests and their intervals
are rows; worker liveness is the heartbeat table; the cache layer's counters are Redis
hashes every process adds to. Reading those when Prometheus asks is correct however many
gunicorn and Celery processes there are, on however many hosts, needs no shared directory
of mmap files (which multiprocess mode does, and which breaks across hosts and on restarts),
and a restarted process loses nothing. The cost is a fixed number of queries per scrape
(SCRAPE_QUERIES, pinned by a test).

No label takes an unbounded value: definitions (named by engineers, a handful), statuses,
kinds, queues, strategies and fixed states only; never a run id, SQL or a URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, OuterRef, Subquery, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from loadtests.models import (
    ACTIVE_STATUSES,
    Alert,
    AlertKind,
    LoadTestDefinition,
    LoadTestRun,
    RunInterval,
    RunStatus,
)
from loadtests.waiting import alive_workers
from offgridperf import cache
from profiling.models import CaptureStatus, ProfileCapture
from queryopt.models import SlowQuery

PREFIX = "offgridperf_"
QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
QUEUES = ("loadgen", "default")
CACHE_RESULTS = (("hit", "hits"), ("miss", "misses"), ("error", "errors"))
# Ad hoc runs (the CLI's URL runs) and runs of a deleted definition, counted together.
NO_DEFINITION = "(no definition)"
# Queries of one scrape: runs by definition and status, the last run of each definition,
# the newest second of the running ones, open alerts, worker heartbeats, captures, slow queries.
SCRAPE_QUERIES = 7
# Statuses of a run that has produced, or is producing, latency figures.
MEASURED = (
    RunStatus.RUNNING,
    RunStatus.PASSED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.ABORTED,
    RunStatus.INTERRUPTED,
)


def _definition_name(name: str | None) -> str:
    return name if name is not None else NO_DEFINITION


def load_test_families() -> Iterator[Metric]:
    requests = CounterMetricFamily(
        f"{PREFIX}loadtest_requests",
        "Requests recorded by the runs of each definition (live while a run goes).",
        labels=["definition"],
    )
    # Ended runs only: a counter never goes down, and a run leaves queued and running.
    runs = CounterMetricFamily(
        f"{PREFIX}loadtest_runs",
        "Load-test runs that ended, by definition and final status.",
        labels=["definition", "status"],
    )
    by_definition: dict[str, int] = {}
    running = 0
    rows = (
        LoadTestRun.objects.values("definition__name", "status")
        .annotate(runs=Count("id"), requests=Sum("requests"))
        .order_by()
    )
    for row in rows:
        name = _definition_name(row["definition__name"])
        by_definition[name] = by_definition.get(name, 0) + (row["requests"] or 0)
        if row["status"] not in ACTIVE_STATUSES:
            runs.add_metric([name, row["status"]], row["runs"])
        elif row["status"] == RunStatus.RUNNING:
            running += row["runs"]
    for name, total in sorted(by_definition.items()):
        requests.add_metric([name], total)
    yield requests
    yield runs
    yield GaugeMetricFamily(f"{PREFIX}loadtest_running", "Load-test runs going now.", value=running)
    yield latency_family()
    yield alert_family()


def alert_family() -> Metric:
    # Regression alerts, and threshold alerts (a scheduled run that failed), until acknowledged.
    family = GaugeMetricFamily(
        f"{PREFIX}alerts_open",
        "Alerts not acknowledged yet, by kind (regression; threshold: a scheduled run failed).",
        labels=["kind"],
    )
    counts = dict(
        Alert.objects.filter(acknowledged_at=None)
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    for kind in AlertKind.values:
        family.add_metric([kind], counts.get(kind, 0))
    return family


def latency_family() -> Metric:
    """Each definition's running run's newest second (worst shard), else its last run's
    summary percentiles: a gauge that moves each second while a run goes."""
    family = GaugeMetricFamily(
        f"{PREFIX}loadtest_latency_seconds",
        "Latency of each definition's running run (its newest second) or last run (whole run).",
        labels=["definition", "quantile"],
    )
    last_run = (
        LoadTestRun.objects.filter(definition=OuterRef("pk"), status__in=MEASURED)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    runs = list(
        LoadTestRun.objects.filter(
            pk__in=LoadTestDefinition.objects.annotate(last=Subquery(last_run))
            .exclude(last=None)
            .values("last")
        ).values("pk", "status", "definition__name", *(f"latency_{p}_ms" for _, p in QUANTILES))
    )
    live = _newest_seconds([run["pk"] for run in runs if run["status"] == RunStatus.RUNNING])
    for run in sorted(runs, key=lambda r: r["definition__name"]):
        figures = live.get(run["pk"], run) if run["status"] == RunStatus.RUNNING else run
        for quantile, name in QUANTILES:
            value = figures.get(f"latency_{name}_ms")
            if value is not None:
                family.add_metric([run["definition__name"], quantile], value / 1000)
    return family


def _newest_seconds(run_ids: list[int]) -> dict[int, dict[str, float]]:
    """{run id: {latency_pNN_ms: worst shard's value}} of the newest stored second."""
    newest = (
        RunInterval.objects.filter(run_id=OuterRef("run_id")).order_by("-index").values("index")[:1]
    )
    seconds: dict[int, dict[str, float]] = {}
    rows = (
        RunInterval.objects.filter(run_id__in=run_ids)
        .annotate(newest=Subquery(newest))
        .filter(index=F("newest"))
        .values("run_id", *(f"latency_{p}_ms" for _, p in QUANTILES))
    )
    for row in rows:
        worst = seconds.setdefault(row.pop("run_id"), {})
        for field, value in row.items():
            if value is not None:
                worst[field] = max(worst.get(field, value), value)
    return seconds


def worker_families() -> Iterator[Metric]:
    # The heartbeat table rather than `celery inspect`: one query, no broadcast that waits
    # for every worker to answer, and it works on the embedded broker, which has no broadcast.
    family = GaugeMetricFamily(
        f"{PREFIX}workers_alive",
        "Celery workers that sent a heartbeat recently, by queue they consume.",
        labels=["queue"],
    )
    workers = alive_workers()
    queues = set(QUEUES).union(*(worker.queues for worker in workers))
    for queue in sorted(queues):
        family.add_metric([queue], sum(queue in worker.queues for worker in workers))
    yield family


def capture_families() -> Iterator[Metric]:
    # Ended captures only, as for runs; retention's deletions lower it (a counter reset to
    # Prometheus), which rate() and increase() ride over.
    captures = CounterMetricFamily(
        f"{PREFIX}profile_captures",
        "Profile captures that ended and are stored, by kind and final status.",
        labels=["kind", "status"],
    )
    rows = (
        ProfileCapture.objects.filter(status__in=(CaptureStatus.DONE, CaptureStatus.ERROR))
        .values("kind", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        captures.add_metric([row["kind"], row["status"]], row["n"])
    yield captures
    yield CounterMetricFamily(
        f"{PREFIX}slow_queries",
        "Slow queries of the product's own database use, stored.",
        value=SlowQuery.objects.count(),
    )


def cache_families() -> Iterator[Metric]:
    family = CounterMetricFamily(
        f"{PREFIX}cache_requests",
        "Cache layer lookups by strategy and result (every process, from Redis).",
        labels=["strategy", "result"],
    )
    for strategy, figures in sorted(cache.figures().items()):
        for result, counter in CACHE_RESULTS:
            family.add_metric([strategy, result], figures.counters[counter])
    yield family


def pool_states() -> dict[str, int]:
    """This process's database connections by state: the psycopg pool's figures on
    PostgreSQL; on SQLite, which has no pool, whether this process holds its connection."""
    pool = getattr(connection, "pool", None) if settings.DATABASE_IS_POSTGRES else None
    if pool is None:
        return {"open": int(connection.connection is not None)}
    stats: dict[str, Any] = pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    return {
        "open": size,
        "idle": idle,
        "busy": max(0, size - idle),
        "waiting": stats.get("requests_waiting", 0),
        "max": pool.max_size,
    }


def pool_families() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        f"{PREFIX}db_pool_connections",
        "Database connections of the process that answered the scrape, by state.",
        labels=["state"],
    )
    for state, value in pool_states().items():
        family.add_metric([state], value)
    yield family


class ProductCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        yield from load_test_families()
        yield from worker_families()
        yield from capture_families()
        yield from cache_families()
        yield from pool_families()


def registry() -> CollectorRegistry:
    """A registry of the product's families only (no process or Python ones: those would
    describe only the one process that happened to answer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProductCollector())
    return registry
