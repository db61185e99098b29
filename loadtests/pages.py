"""Read side of the dashboard: what pages and their JSON endpoints show.

Every function here runs a fixed number of queries whatever the number of runs and intervals:
lists are paginated or limited, per-definition trends come from one windowed query, and a
run's per-second series are read as plain values (never its per-second histograms). A queued run
shown adds one query, the workers alive on the run queue (however many runs are queued), and a
queued run read after LOADTEST_QUEUE_TIMEOUT_S one more, the update that ends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    Case,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import dateformat, timezone

from loadtests import (
    agentpage,
    charts,
    compare,
    documents,
    lifecycle,
    reports,
    secrets,
    waiting,
)
from loadtests.engine.config import DEFAULT_SUCCESS_TEXT
from loadtests.models import (
    ACTIVE_STATUSES,
    LoadTestDefinition,
    LoadTestRun,
    RunInterval,
    RunStatus,
)
from stats.histogram import Histogram

RUNS_PER_PAGE = 25
TREND_RUNS = 20
HISTORY_RUNS = 100
RUNNING_SHOWN = 20

# What run lists need; never the encoded histograms or the frozen config.
RUN_LIST_FIELDS = (
    "id", "definition_id", "name", "status", "created_at", "started_at", "finished_at",
    "planned_duration_s", "duration_s", "requests", "errors", "error_rate_pct",
    "throughput_rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "passed", "valid",
    "trigger", "health",  # health: an invalid run's badge says why (health.invalid_reason)
)  # fmt: skip

INTERVAL_FIELDS = (
    "index", "shard", "length_s", "requests", "errors", "throughput_rps", "target",
    "active_users", "in_flight", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    "latency_max_ms", "service_p50_ms", "service_p95_ms", "service_p99_ms",
    "in_flight_mean", "in_flight_max",
)  # fmt: skip

FINISHED = Q(finished_at__isnull=False) & ~Q(status__in=ACTIVE_STATUSES)


def run_list() -> QuerySet[LoadTestRun]:
    return LoadTestRun.objects.only(*RUN_LIST_FIELDS)


# -- overview ------------------------------------------------------------------------------


def filtered_runs(filters: dict[str, Any]) -> QuerySet[LoadTestRun]:
    """Runs newest first, narrowed by the cleaned overview filters."""
    runs = run_list()
    if "definition" in filters:
        runs = runs.filter(definition_id=filters["definition"])
    if "status" in filters:
        runs = runs.filter(status=filters["status"])
    if "since" in filters:
        runs = runs.filter(created_at__gte=_day_start(filters["since"]))
    if "until" in filters:
        runs = runs.filter(created_at__lt=_day_start(filters["until"]) + timedelta(days=1))
    if "tag" in filters:
        runs = runs.filter(definition__tags__name=filters["tag"])
    if "trigger" in filters:
        runs = runs.filter(trigger=filters["trigger"])
    return runs.order_by("-created_at", "-id")


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def run_page(runs: QuerySet[LoadTestRun], page_number: str | None) -> Page:
    return Paginator(runs, RUNS_PER_PAGE).get_page(page_number)


def with_running(runs: Iterable[LoadTestRun], running: Sequence[LoadTestRun]) -> list[LoadTestRun]:
    """The page's runs with each one that `running` holds replaced by that object, so that a
    run read twice in one request (the page, then "Running now") is shown one way only. Read
    `running` first: a queued run it ended (queue timeout) then lists as ended here too."""
    live = {run.pk: run for run in running}
    return [live.get(run.pk, run) for run in runs]


def _latest_p95() -> Subquery:
    # Shard 0's latest second: one backward step on the (run, shard, index) index. The worst
    # shard's would read every second of the run, on every poll of every watching page.
    latest = RunInterval.objects.filter(run=OuterRef("pk"), shard=0).order_by("-index")
    return Subquery(latest.values("latency_p95_ms")[:1])


def running_now() -> list[LoadTestRun]:
    """Queued and running runs, oldest first, in one query, each with its elapsed seconds
    (server clock), progress, error rate so far and the p95 of its latest second."""
    runs = list(
        run_list()
        .filter(status__in=ACTIVE_STATUSES)
        .annotate(current_p95_ms=_latest_p95())
        .order_by("created_at", "id")[:RUNNING_SHOWN]
    )
    runs = with_waiting(runs)
    for run in runs:
        run.elapsed_s = elapsed_s(run)
        run.progress_pct = charts.progress(run.elapsed_s, run.planned_duration_s)
        run.error_rate_so_far_pct = (
            round(100.0 * run.errors / run.requests, 3) if run.requests else None
        )
    return runs


def with_waiting(runs: list[LoadTestRun]) -> list[LoadTestRun]:
    """The runs still active, each queued one with its `waiting` state (None for the others).

    A queued run past LOADTEST_QUEUE_TIMEOUT_S ends here as error and is left out: reading it
    enforces the rule even when neither beat nor any worker runs housekeeping."""
    queued = [run for run in runs if run.status == RunStatus.QUEUED]
    workers = waiting.queue_workers() if queued else None
    shown = []
    for run in runs:
        if workers is not None and lifecycle.expire_queued_run(run, workers=workers):
            continue
        run.waiting = waiting.waiting_state(run, workers) if workers is not None else None
        shown.append(run)
    return shown


def running_state(run: LoadTestRun) -> dict[str, Any]:
    """One run of running_now() as the overview's live panel shows it."""
    return {
        "id": run.pk,
        "name": run.name,
        "status": run.status,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        # As the page prints it (server time zone), so that added rows match rendered ones.
        "started_time": dateformat.format(timezone.localtime(run.started_at), "H:i:s")
        if run.started_at
        else None,
        "elapsed_s": run.elapsed_s,
        "planned_s": run.planned_duration_s,
        "progress_pct": run.progress_pct,
        "requests": run.requests,
        "errors": run.errors,
        "error_rate_pct": run.error_rate_so_far_pct,
        "latency_p95_ms": run.current_p95_ms,
        "url": run.get_absolute_url(),
        "waiting": run.waiting,
    }


def elapsed_s(run: LoadTestRun) -> float | None:
    if not run.started_at:
        return None
    end = run.finished_at or timezone.now()
    return round((end - run.started_at).total_seconds(), 1)


# One index scan of (definition, -created_at) per definition: with years of history this
# reads 20 rows each instead of ranking every run as a window function must.
LATERAL_TRENDS_SQL = """
SELECT d.id, r.id, r.latency_p95_ms, r.passed, r.status
FROM {definitions} d
CROSS JOIN LATERAL (
    SELECT id, latency_p95_ms, passed, status, created_at FROM {runs}
    WHERE definition_id = d.id AND finished_at IS NOT NULL AND status <> ALL(%s)
    ORDER BY created_at DESC, id DESC
    LIMIT %s
) r
"""


def _trend_rows(limit: int) -> Iterable[tuple[Any, ...]]:
    if connection.vendor == "postgresql":
        sql = LATERAL_TRENDS_SQL.format(
            definitions=LoadTestDefinition._meta.db_table, runs=LoadTestRun._meta.db_table
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(ACTIVE_STATUSES), limit])
            return cursor.fetchall()
    return (
        LoadTestRun.objects.filter(FINISHED, definition__isnull=False)
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("definition_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(position__lte=limit)
        .values_list("definition_id", "id", "latency_p95_ms", "passed", "status")
    )


def definition_trends(limit: int = TREND_RUNS) -> dict[int, list[dict[str, Any]]]:
    """The last `limit` finished runs of every definition, oldest first, in one query."""
    trends: dict[int, list[dict[str, Any]]] = {}
    for definition_id, run_id, p95, passed, status in _trend_rows(limit):
        trends.setdefault(definition_id, []).append(
            {"id": run_id, "p95": p95, "passed": passed, "status": status}
        )
    for points in trends.values():
        points.sort(key=lambda point: point["id"])
    return trends


def definitions_with_trends() -> list[LoadTestDefinition]:
    definitions = list(LoadTestDefinition.objects.prefetch_related("tags"))
    trends = definition_trends()
    for definition in definitions:
        definition.trend = trends.get(definition.pk, [])
        definition.last = definition.trend[-1] if definition.trend else None
        # Runs without requests have no p95: a sparkline of them would be empty.
        definition.trend_drawn = any(point["p95"] is not None for point in definition.trend)
    return definitions


# -- definition page ---------------------------------------------------------------------


def definition_history(definition: LoadTestDefinition, limit: int = HISTORY_RUNS) -> list[Any]:
    """Its latest runs, newest first."""
    return list(run_list().filter(definition=definition).order_by("-created_at", "-id")[:limit])


def threshold_lines(definition: LoadTestDefinition | None) -> dict[str, float | None]:
    """The definition's current limits, drawn as horizontal lines on its history charts."""
    if definition is None:
        return {"p95": None, "p99": None, "error_rate": None, "throughput_rps": None}
    return {
        "p95": definition.threshold_p95_ms,
        "p99": definition.threshold_p99_ms,
        "error_rate": definition.threshold_error_rate_pct,
        "throughput_rps": definition.threshold_min_throughput_rps,
    }


def history_chart(
    runs: Sequence[LoadTestRun], definition: LoadTestDefinition | None = None
) -> dict[str, Any]:
    """Per-run series for the definition's history charts, oldest first; failing runs marked,
    and the definition's limits to draw across them."""
    finished = [run for run in reversed(runs) if run.status not in ACTIVE_STATUSES]
    return {
        "limits": threshold_lines(definition),
        "error_rate": [run.error_rate_pct for run in finished],
        "labels": [f"#{run.pk}" for run in finished],
        "ids": [run.pk for run in finished],
        "p50": [run.latency_p50_ms for run in finished],
        "p95": [run.latency_p95_ms for run in finished],
        "p99": [run.latency_p99_ms for run in finished],
        "throughput_rps": [run.throughput_rps for run in finished],
        "failed": [run.passed is False for run in finished],
        "status": [run.status for run in finished],
        # Finished runs that recorded no request have nothing to draw: the page says so.
        "drawn": any(run.requests for run in finished),
    }


@dataclass(frozen=True)
class Baseline:
    run: LoadTestRun | None
    chosen: bool  # True: picked by a user; False: the default (last passing run)


def shown_steps(definition: LoadTestDefinition, shown: dict[str, Any]) -> list[dict[str, Any]]:
    """The definition's steps as its page shows them, from `shown` (its frozen document
    through secrets.masked_config): secret header values masked, and masked too wherever a
    step repeats a secret (a path, a check value). Uses the prefetched steps."""
    steps = list(definition.steps.all())
    rows = []
    for step, masked in zip(steps, shown.get("steps") or [], strict=False):
        check = f"{step.get_check_type_display()} {masked['check_path']} {masked['check_value']}"
        rows.append(
            {
                "step": step,
                "request": f"{step.method} {masked['path']}",
                "headers": masked["headers"],
                "check": check if step.check_type else "",
                # Empty means the one default rule: say which statuses that is.
                "statuses": step.expected_statuses or DEFAULT_SUCCESS_TEXT,
            }
        )
    return rows


def baseline_of(
    definition: LoadTestDefinition, *, before: LoadTestRun | None = None, full: bool = False
) -> Baseline:
    """The definition's chosen baseline, else its last passing run (before `before`, if given).

    `full` loads every field (histograms included) for a comparison; otherwise list fields.
    """
    runs = LoadTestRun.objects.all() if full else run_list()
    if definition.baseline_run_id and (before is None or definition.baseline_run_id != before.pk):
        run = runs.filter(pk=definition.baseline_run_id).first()
        if run is not None:
            return Baseline(run, True)
    passing = runs.filter(definition=definition, status=RunStatus.PASSED)
    if before is not None:
        passing = passing.exclude(pk=before.pk).filter(created_at__lte=before.created_at)
    return Baseline(passing.order_by("-created_at", "-id").first(), False)


# -- run page -----------------------------------------------------------------------------


def has_baseline(run: LoadTestRun) -> bool:
    """Whether the compare page would find `run` a baseline (as baseline_of(before=run)),
    so that the run page offers "Compare with baseline" only then (for a run still going,
    once it ends): at most one query, none when its definition (selected with the run) names
    another run as its baseline."""
    definition = run.definition
    if definition is None:
        return False
    if definition.baseline_run_id and definition.baseline_run_id != run.pk:
        return True
    return (
        LoadTestRun.objects.filter(
            definition=definition, status=RunStatus.PASSED, created_at__lte=run.created_at
        )
        .exclude(pk=run.pk)
        .exists()
    )


def combine_shards(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """One row per second (rows as INTERVAL_FIELDS tuples): counts add up across shards,
    percentiles take the worst shard."""
    summed = {
        "requests", "errors", "throughput_rps", "target", "active_users", "in_flight",
        "in_flight_mean", "in_flight_max",
    }  # fmt: skip
    seconds: dict[int, list[Any]] = {}
    for row in rows:
        current = seconds.get(row[0])
        if current is None:
            seconds[row[0]] = list(row)
            continue
        for position, key in enumerate(INTERVAL_FIELDS):
            if key in summed:
                current[position] = (current[position] or 0) + (row[position] or 0)
            elif key.endswith("_ms") and row[position] is not None:
                current[position] = max(current[position] or 0.0, row[position])
        if len(row) > len(INTERVAL_FIELDS):  # the seconds' samples: all shards' together
            current[-1] = [*current[-1], *row[-1]]
    return [tuple(seconds[index]) for index in sorted(seconds)]


def _samples(encoded: str) -> list[tuple[int, int]]:
    """(histogram slot, count) pairs of one second's encoded latency histogram."""
    if not encoded:
        return []
    counts = Histogram.decode(encoded).counts
    return [(index, count) for index, count in enumerate(counts) if count]


def interval_columns(
    run: LoadTestRun, *, after: int = -1, limit: int | None = None
) -> dict[str, list[Any]]:
    """The run's seconds after `after` as columns (one list per INTERVAL_FIELDS name), and
    "samples": the (histogram slot, count) pairs of each second too short of requests for its
    own p99, from which charts.gated_percentile draws a rolling window (busier seconds send
    none)."""
    few = Case(
        When(requests__lt=charts.ROLLING_BELOW, then=F("latency_histogram")),
        default=Value(""),
        output_field=TextField(),
    )
    query = (
        run.intervals.filter(index__gt=after)
        .order_by("index", "shard")
        .annotate(few_samples=few)
        .values_list(*INTERVAL_FIELDS, "few_samples")
    )
    rows = [(*row[:-1], _samples(row[-1])) for row in (query[:limit] if limit else query)]
    if any(row[1] for row in rows):  # several shards wrote the same seconds
        rows = combine_shards(rows)
    names = (*INTERVAL_FIELDS, "samples")
    if not rows:
        return {name: [] for name in names}
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


def _rates(counts: Sequence[float], lengths: Sequence[float]) -> list[float]:
    return [
        round(count / length, 3) if length else float(count)
        for count, length in zip(counts, lengths, strict=True)
    ]


def series_of(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Chart series by the names the pages use."""
    return {
        "throughput_rps": _rates(columns["requests"], columns["length_s"]),
        "errors": _rates(columns["errors"], columns["length_s"]),
        "p50": columns["latency_p50_ms"],
        "p95": columns["latency_p95_ms"],
        "p99": columns["latency_p99_ms"],
        "max": columns["latency_max_ms"],
        "s50": columns["service_p50_ms"],
        "s95": columns["service_p95_ms"],
        "s99": columns["service_p99_ms"],
        "users": columns["active_users"],
        "in_flight": columns["in_flight"],
        # Runs recorded before in flight was sampled within the second have the one reading.
        "in_flight_mean": _or(columns["in_flight_mean"], columns["in_flight"]),
        "in_flight_max": _or(columns["in_flight_max"], columns["in_flight"]),
        "target": columns["target"],
    }


def _or(values: Sequence[Any], fallback: Sequence[Any]) -> list[Any]:
    return [f if v is None else v for v, f in zip(values, fallback, strict=True)]


# Series drawn with a min/max band when downsampled (the others need only their mean).
BANDED = ("throughput_rps", "p99", "in_flight_max")


def _gate_percentiles(
    columns: dict[str, list[Any]], series: dict[str, list[Any]]
) -> dict[str, list[bool]]:
    """Replace per-second percentiles of too few requests (charts.PERCENTILE_MIN_REQUESTS):
    latency ones by a rolling window, service-time ones (no samples kept) by nothing."""
    counts = columns["requests"]
    rolling = {}
    for name in charts.PERCENTILE_MIN_REQUESTS:
        series[name], rolling[name] = charts.gated_percentile(
            counts, series[name], columns.get("samples") or [[]] * len(counts), name
        )
        service = "s" + name[1:]
        needed = charts.PERCENTILE_MIN_REQUESTS[name]
        series[service] = [
            v if c >= needed else None for v, c in zip(series[service], counts, strict=True)
        ]
    return rolling


def timeline(
    columns: dict[str, list[Any]], max_points: int = charts.MAX_POINTS, after: int = -1
) -> dict[str, Any]:
    """The per-second charts' series, downsampled with min/max kept where drawn: one shape for
    the run page's first draw and for each live update (which appends it). Seconds up to
    `after` only feed the rolling windows of the ones after it; "rolling" flags the points
    drawn from such a window."""
    series = series_of(columns)
    del series["max"]
    rolling = _gate_percentiles(columns, series)
    start = next((i for i, x in enumerate(columns["index"]) if x > after), len(columns["index"]))
    series = {name: values[start:] for name, values in series.items()}
    x = columns["index"][start:]
    result = charts.downsample(x, series, max_points, banded=BANDED)
    result["rolling"] = {
        name: charts.any_in_buckets(flags[start:], max_points) for name, flags in rolling.items()
    }
    return result


def histogram_charts(encoded: str) -> dict[str, list[dict]]:
    """Spectrum and log-scale distribution of one encoded histogram, in milliseconds."""
    if not encoded:
        return {"spectrum": [], "distribution": []}
    histogram = Histogram.decode(encoded)
    return {
        "spectrum": charts.spectrum_points(histogram.percentile_spectrum()),
        "distribution": charts.one_two_five_buckets(
            charts.distribution_points(histogram.log_buckets())
        ),
    }


def run_chart_data(run: LoadTestRun, columns: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "active": run.is_active,
        "load_model": documents.upgrade(run.config)["load_model"],
        "last_index": columns["index"][-1] if columns["index"] else -1,
        "timeline": timeline(columns),
        # The live endpoint sends at most this many seconds at a time: a full page means more.
        "max_points": charts.MAX_POINTS,
        "percentile_min_requests": charts.PERCENTILE_MIN_REQUESTS,
        "latency": histogram_charts(run.latency_histogram),
        "service": histogram_charts(run.service_histogram),
        # Shown instead of a chart with nothing to draw (Chart.js would draw -1…1 axes).
        "empty_text": NO_DATA_YET if run.is_active else NO_REQUESTS,
        "histogram_empty_text": HISTOGRAM_LATER if run.is_active else NO_REQUESTS,
    }


NO_DATA_YET = "No data yet: each second is drawn once it is stored."
NO_REQUESTS = "No requests recorded."
HISTOGRAM_LATER = "Drawn when the run ends."


def errors_table(run: LoadTestRun) -> list[dict[str, Any]]:
    """Errors by class, largest first, with a sample message where the run recorded one."""
    return errors_table_of(run.errors_by_class)


def errors_table_of(errors_by_class: dict[str, Any] | None) -> list[dict[str, Any]]:
    table = [
        {"name": name, "count": entry.get("count", 0), "sample": entry.get("sample", "")}
        if isinstance(entry, dict)
        else {"name": name, "count": entry, "sample": ""}
        for name, entry in (errors_by_class or {}).items()
    ]
    return sorted(table, key=lambda row: (-row["count"], row["name"]))


def step_order(run: LoadTestRun) -> list[str]:
    """Step names in the order of the run's (frozen) definition."""
    steps = documents.upgrade(run.config).get("steps") or []
    return [step.get("name", "") for step in steps if isinstance(step, dict)]


def summary_context(run: LoadTestRun) -> dict[str, Any]:
    columns, rows = charts.labelled_step_table(
        agentpage.without_agent_figures(run.steps_summary),
        step_order(run),
        run.duration_s or elapsed_s(run),
    )
    return {
        "run": run,
        "status_reason": secrets.redact_config_text(run.status_reason, run.config),
        "elapsed_s": elapsed_s(run),
        "latency": run.percentiles("latency"),
        "service": run.percentiles("service"),
        "errors": errors_table(run),
        "step_columns": columns,
        "step_rows": rows,
        "health": charts.health_rows(run.health),
        "percentile_rule": charts.PERCENTILE_RULE,
        "default_error_rate_pct": reports.DEFAULT_ERROR_RATE_LIMIT_PCT,
        "agent_rows": agentpage.step_rows(run.steps_summary, step_order(run)),
        "agent_install_line": agentpage.INSTALL_LINE,
        "agent_docs": agentpage.DOCS_PATH,
    }


PERCENTILE_NAMES = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
LIVE_SUMMARY_TTL_S = 3600


def _live_key(run: LoadTestRun) -> str:
    # The start time too: a test database recreated reuses ids, and a stale merge must not.
    started = run.started_at.timestamp() if run.started_at else 0
    return f"loadtests:live-summary:{run.pk}:{started}"


def live_summary_context(run: LoadTestRun) -> dict[str, Any]:
    """summary_context of a run still going, its percentiles and errors by class from the
    merged histograms and errors of the seconds stored so far.

    The merge so far is cached with the last interval id read, so each poll reads (one
    query) and decodes only the seconds stored since: a shard's late second has a higher id
    and is never missed.
    """
    state = cache.get(_live_key(run)) or {
        "last_id": 0, "latency": "", "service": "", "errors": {}, "steps": {},
    }  # fmt: skip
    steps: dict[str, dict[str, int]] = state.setdefault("steps", {})
    state.setdefault("requests", 0)
    state.setdefault("covered_s", 0.0)
    latency = Histogram.decode(state["latency"]) if state["latency"] else Histogram()
    service = Histogram.decode(state["service"]) if state["service"] else Histogram()
    fresh = list(
        run.intervals.filter(pk__gt=state["last_id"])
        .order_by("pk")
        .only(
            "pk", "run_id", "latency_histogram", "service_histogram", "errors_by_class",
            "per_step", "requests", "index", "length_s",
        )
    )  # fmt: skip
    if fresh:
        new_latency, new_service = reports.merged_histograms(fresh)
        latency.merge(new_latency)
        service.merge(new_service)
        for interval in fresh:
            reports.merge_errors(state["errors"], interval.errors_by_class)
            add_step_counts(steps, interval.per_step)
            state["requests"] += interval.requests
            state["covered_s"] = max(state["covered_s"], interval.index + interval.length_s)
        state.update(
            last_id=fresh[-1].pk,
            latency=latency.encode(),
            service=service.encode(),
        )
        cache.set(_live_key(run), state, LIVE_SUMMARY_TTL_S)
    context = summary_context(run)
    for kind, histogram in (("latency", latency), ("service", service)):
        values = reports.histogram_summary(histogram, kind)
        context[kind] = {name: values.get(f"{kind}_{name}_ms") for name in PERCENTILE_NAMES}
    context["errors"] = errors_table_of(state["errors"])
    # The rate over the seconds stored (every shard's), not over the time since the start:
    # the second being generated is not stored yet and would pull the rate down.
    context["rate_so_far"] = (
        state["requests"] / state["covered_s"] if state["covered_s"] > 0 else None
    )
    if steps and not run.steps_summary:
        # Counts, req/s and shares so far; the per-step percentiles come when the run ends.
        context["step_columns"], context["step_rows"] = charts.labelled_step_table(
            steps, step_order(run), elapsed_s(run) or 0.0
        )
    context["live"] = True
    return context


def add_step_counts(total: dict[str, dict[str, int]], second: Any) -> None:
    """Add one second's per-step counts ({step: {requests, errors, ...}}) to `total`."""
    for name, counts in (second or {}).items():
        if not isinstance(counts, dict):
            continue
        into = total.setdefault(name, {})
        for key, value in counts.items():
            if isinstance(value, int | float):
                into[key] = into.get(key, 0) + value


def queue_wait(run: LoadTestRun) -> dict[str, Any] | None:
    """A queued run's waiting state, None for any other run; a run past
    LOADTEST_QUEUE_TIMEOUT_S ends as error here (and `run` says so)."""
    if run.status != RunStatus.QUEUED:
        return None
    shown = with_waiting([run])
    return shown[0].waiting if shown else None


def live_state(run: LoadTestRun, *, after: int = -1, limit: int = charts.MAX_POINTS) -> dict:
    """What a watching page needs each second: status, progress and the new seconds, and while
    the run is queued, what it waits for."""
    waiting_now = queue_wait(run)
    elapsed = elapsed_s(run)
    # The seconds before `after` feed the rolling windows of the new ones.
    history = max(-1, after - charts.ROLLING_WINDOW_MAX_S)
    columns = interval_columns(run, after=history, limit=limit + after - history)
    return {
        "id": run.pk,
        "status": run.status,
        "active": run.is_active,
        "status_reason": secrets.redact_config_text(run.status_reason, run.config),
        "elapsed_s": elapsed,
        "planned_s": run.planned_duration_s,
        "progress_pct": charts.progress(elapsed, run.planned_duration_s),
        "requests": run.requests,
        "errors": run.errors,
        "waiting": waiting_now,
        "last_index": max(columns["index"][-1], after) if columns["index"] else after,
        "timeline": timeline(columns, max_points=limit, after=after),
    }


# -- compare ------------------------------------------------------------------------------


def summary_values(run: LoadTestRun) -> dict[str, float | None]:
    """The compared figures of a run, with its request count: a run that sent nothing has
    no data to compare (compare.has_data)."""
    values = {metric.key: getattr(run, metric.key) for metric in compare.COMPARED_METRICS}
    return {**values, "requests": run.requests}


def noise_history(run: LoadTestRun, exclude: Sequence[int]) -> list[float | None]:
    """p95 of the last finished runs of the run's definition (the run-to-run noise sample)."""
    if run.definition_id is None:
        return []
    return list(
        LoadTestRun.objects.filter(FINISHED, definition_id=run.definition_id)
        .exclude(pk__in=exclude)
        .exclude(latency_p95_ms=None)
        .order_by("-created_at", "-id")
        .values_list("latency_p95_ms", flat=True)[: compare.NOISE_RUNS]
    )


def p95_series(run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Per-second p95 of each run (worst shard; downsampled), read in one query."""
    seconds: dict[int, dict[int, float | None]] = {run_id: {} for run_id in run_ids}
    for run_id, index, p95 in (
        RunInterval.objects.filter(run_id__in=run_ids)
        .order_by("run_id", "index", "shard")
        .values_list("run_id", "index", "latency_p95_ms")
    ):
        known = seconds[run_id].get(index)
        seconds[run_id][index] = p95 if known is None else max(known, p95 or 0.0)
    return {
        run_id: charts.downsample(list(by_index), {"p95": list(by_index.values())})
        for run_id, by_index in seconds.items()
    }


def comparison(a: LoadTestRun, b: LoadTestRun) -> dict[str, Any]:
    values_a, values_b = summary_values(a), summary_values(b)
    history = noise_history(a, exclude=[b.pk])
    run_noise = compare.noise(history)
    verdict = compare.verdict(values_a, values_b, run_noise)
    series = p95_series([a.pk, b.pk])
    noise_runs = len([v for v in history if v is not None])
    result = {
        "deltas": compare.deltas(values_a, values_b),
        "step_deltas": compare.step_deltas(a.steps_summary, b.steps_summary),
        "step_metrics": compare.STEP_METRICS,
        "agent_step_deltas": agentpage.step_deltas(a.steps_summary, b.steps_summary),
        "verdict": verdict,
        "confidence": compare.confidence_text(noise_runs),
        "noise": run_noise,
        "noise_runs": noise_runs,
        "rule": compare.VERDICT_RULE,
        "margin_pct": compare.REGRESSION_PCT,
        "chart": {
            "a": {
                "id": a.pk,
                "spectrum": histogram_charts(a.latency_histogram)["spectrum"],
                "no_data": None if compare.has_data(values_a) else compare.NO_DATA_BASELINE,
            },
            "b": {
                "id": b.pk,
                "spectrum": histogram_charts(b.latency_histogram)["spectrum"],
                "no_data": None if compare.has_data(values_b) else compare.NO_DATA_THIS_RUN,
            },
            "p95": {"a": series[a.pk], "b": series[b.pk]},
        },
    }
    chart = result["chart"]
    # Neither run has anything to draw: the page says so instead of drawing empty axes.
    chart["has_spectrum"] = bool(chart["a"]["spectrum"] or chart["b"]["spectrum"])
    chart["has_p95"] = bool(series[a.pk]["x"] or series[b.pk]["x"])
    chart["empty_text"] = NO_REQUESTS
    return result


COMPARE_CHOICES = 200


def compare_choices(limit: int = COMPARE_CHOICES) -> list[tuple[str, list[LoadTestRun]]]:
    """The latest finished runs for the compare page's pickers, grouped by definition name
    (groups by their newest run, runs newest first), in one query."""
    runs = (
        LoadTestRun.objects.filter(FINISHED)
        .only("id", "definition_id", "name", "status", "created_at", "latency_p95_ms")
        .order_by("-created_at", "-id")[:limit]
    )
    groups: dict[tuple[int | None, str], list[LoadTestRun]] = {}
    for run in runs:
        # Ad hoc runs (no definition) are grouped by their own name.
        groups.setdefault((run.definition_id, run.name), []).append(run)
    return [(name, members) for (_, name), members in groups.items()]
