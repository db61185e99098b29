"""Coordination of load-test runs: queueing, execution on a worker, live persistence,
summaries, cancellation and reaping. Views, admin actions, tasks and the CLI call these."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from loadtests import secrets, waiting
from loadtests.engine import EngineConfig, IntervalSnapshot, RunResult, Stage, Step
from loadtests.engine import run as run_engine
from loadtests.engine.histograms import Histogram, write_interval_log
from loadtests.models import (
    LoadModel,
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStage,
    LoadTestStep,
    RunInterval,
    RunStatus,
    RunTrigger,
    Tag,
)
from loadtests.validators import (
    host_is_allowed,
    parse_status_codes,
    user_field,
    validate_target_url,
)

log = logging.getLogger(__name__)

# A running run writes a heartbeat each second; ten missed ones and it is taken for dead (the
# housekeeping thread looks every few seconds: interrupted within 15 s of the last heartbeat).
HEARTBEAT_S = 1.0
HEARTBEAT_STALE_S = 10
CANCEL_POLL_S = 0.5
PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
FINISHED_EXIT_CODES = {RunStatus.PASSED: 0, RunStatus.FAILED: 1, RunStatus.ABORTED: 1}

ProgressCallback = Callable[[LoadTestRun, IntervalSnapshot], None]


class RunRefused(ValidationError):
    """A run that may not start: the message names the field and the rule."""


# -- definitions -> frozen config ------------------------------------------------------


def freeze_definition(
    definition: LoadTestDefinition,
    steps: Iterable[LoadTestStep] | None = None,
    stages: Iterable[LoadTestStage] | None = None,
) -> dict[str, Any]:
    """A JSON copy of everything a run needs, so later edits never rewrite history.

    `steps` and `stages` (in order) stand in for the stored ones when given: the admin
    checks a definition as a run would freeze it before anything is saved.
    """
    steps = definition.steps.all() if steps is None else steps
    stages = definition.stages.all() if stages is None else stages
    return {
        "name": definition.name,
        "definition_id": definition.pk,
        "target_base_url": definition.target_base_url.rstrip("/"),
        "load_model": definition.load_model,
        "users": definition.users,
        "rate_rps": definition.rate_rps,
        "think_time_min_s": definition.think_time_min_s,
        "think_time_max_s": definition.think_time_max_s,
        "duration_s": definition.duration_s,
        "timeout_s": definition.timeout_s,
        "max_connections": definition.max_connections,
        "follow_redirects": definition.follow_redirects,
        "verify_tls": definition.verify_tls,
        "abort_error_rate_pct": definition.abort_error_rate_pct,
        "steps": [
            {
                "name": step.name,
                "method": step.method,
                "path": step.path,
                "headers": step.headers or {},
                "secret_headers": list(step.secret_headers or []),
                "body": step.body or None,
                "weight": step.weight,
                "expected_statuses": list(parse_status_codes(step.expected_statuses)),
                "check_type": step.check_type,
                "check_path": step.check_path,
                "check_value": step.check_value,
            }
            for step in steps
        ],
        "stages": [{"duration_s": stage.duration_s, "target": stage.target} for stage in stages],
        "thresholds": {
            "p95_ms": definition.threshold_p95_ms,
            "p99_ms": definition.threshold_p99_ms,
            "error_rate_pct": definition.threshold_error_rate_pct,
            "min_throughput_rps": definition.threshold_min_throughput_rps,
        },
        "tags": [tag.name for tag in definition.tags.all()] if definition.pk else [],
    }


def _json_check_value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def engine_config_from(frozen: dict[str, Any]) -> EngineConfig:
    steps = tuple(
        Step(
            name=step["name"],
            method=step["method"],
            path=step["path"],
            headers=dict(step.get("headers") or {}),
            body=step.get("body") or None,
            weight=step.get("weight", 1),
            expect_status=tuple(step.get("expected_statuses") or (200,)),
            check_contains=step["check_value"] if step.get("check_type") == "contains" else None,
            check_json_field=step["check_path"]
            if step.get("check_type") == "json_equals"
            else None,
            check_json_value=(
                _json_check_value(step.get("check_value", ""))
                if step.get("check_type") == "json_equals"
                else None
            ),
        )
        for step in frozen["steps"]
    )
    closed = frozen["load_model"] == LoadModel.CLOSED
    return EngineConfig(
        base_url=frozen["target_base_url"],
        steps=steps,
        model=frozen["load_model"],
        users=int(frozen["users"]) if closed else 0,
        rate=float(frozen["rate_rps"]) if not closed else 0.0,
        think_min_s=float(frozen["think_time_min_s"]) if closed else 0.0,
        think_max_s=float(frozen["think_time_max_s"]) if closed else 0.0,
        stages=tuple(
            Stage(duration_s=s["duration_s"], target=s["target"]) for s in frozen["stages"]
        ),
        duration_s=float(frozen["duration_s"]),
        timeout_s=float(frozen["timeout_s"]),
        max_connections=int(frozen["max_connections"]),
        abort_error_rate_pct=frozen.get("abort_error_rate_pct"),
        follow_redirects=bool(frozen.get("follow_redirects")),
        # Runs frozen before the setting existed verified certificates.
        verify_tls=bool(frozen.get("verify_tls", True)),
    )


def config_problems(frozen: dict[str, Any]) -> dict[str, list[str]]:
    """Everything wrong with a frozen config, by field in the user's terms (`rate_rps`, not
    the engine's `rate`); empty when it can run. The rules are the engine's own, so the
    admin, the CLI and the engine agree; the allow-list is the one rule only Django knows."""
    problems: dict[str, list[str]] = {}
    try:
        validate_target_url(frozen["target_base_url"])
    except ValidationError as exc:
        problems["target_base_url"] = list(exc.messages)
    for field, message in engine_config_from(frozen).validate():
        messages = problems.setdefault(user_field(field), [])
        if message not in messages:
            messages.append(message)
    return problems


def _refuse_if_problems(frozen: dict[str, Any]) -> None:
    problems = config_problems(frozen)
    if problems:
        raise RunRefused(problems)


def ensure_definition(spec: dict[str, Any]) -> tuple[LoadTestDefinition, bool]:
    """Create a definition from a plain spec unless one with its name exists (never overwrites
    what a user edited). Keys are model field names, plus `steps`, `stages` and `tags` lists."""
    existing = LoadTestDefinition.objects.filter(name=spec["name"]).first()
    if existing is not None:
        return existing, False
    # None means "the model's default" for the fields that do not apply to the load model.
    fields = {
        k: v for k, v in spec.items() if k not in ("steps", "stages", "tags") and v is not None
    }
    with transaction.atomic():
        definition = LoadTestDefinition(**fields)
        definition.full_clean()
        definition.save()
        for order, step_spec in enumerate(spec.get("steps", [])):
            step = LoadTestStep(definition=definition, **{"order": order, **step_spec})
            step.full_clean()
            step.save()
        for order, stage_spec in enumerate(spec.get("stages", [])):
            stage = LoadTestStage(definition=definition, **{"order": order, **stage_spec})
            stage.full_clean()
            stage.save()
        for tag_name in spec.get("tags", []):
            definition.tags.add(Tag.objects.get_or_create(name=tag_name)[0])
        _refuse_if_problems(freeze_definition(definition))
    return definition, True


# -- queueing -------------------------------------------------------------------------


def create_run(
    definition: LoadTestDefinition,
    *,
    trigger: str = RunTrigger.MANUAL,
    user: Any = None,
) -> LoadTestRun:
    """A queued run with a frozen config; raises RunRefused when it may not start."""
    frozen = freeze_definition(definition)
    _refuse_if_problems(frozen)
    return LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config=frozen,
        trigger=trigger,
        started_by=user if getattr(user, "is_authenticated", False) else None,
        planned_duration_s=definition.duration_s,
    )


def queue_run(
    definition: LoadTestDefinition, *, trigger: str = RunTrigger.MANUAL, user: Any = None
) -> LoadTestRun:
    """Create a run and hand it to the `loadgen` queue once the transaction commits."""
    from loadtests.tasks import execute_run

    with transaction.atomic():
        run = create_run(definition, trigger=trigger, user=user)
        transaction.on_commit(lambda: dispatch(run, execute_run))
    return run


def dispatch(run: LoadTestRun, task: Any) -> None:
    # Limits follow the run's own length, not the worker-wide default.
    soft = run.planned_duration_s + 120
    try:
        result = task.apply_async(args=[run.pk], soft_time_limit=soft, time_limit=soft + 60)
    except KombuOperationalError as exc:
        # The broker is down (Celery already retried): end the run now with the reason, rather
        # than fail the request or leave a run queued that no worker will ever see.
        reason = (
            f"Not started: the broker (CELERY_BROKER_URL) did not answer ({exc}). "
            "Start it again once the broker is back."
        )
        log.warning("run %s: %s", run.pk, reason)
        ended = {"status": RunStatus.ERROR, "status_reason": reason, "finished_at": timezone.now()}
        LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(**ended)
        for name, value in ended.items():
            setattr(run, name, value)
        return
    LoadTestRun.objects.filter(pk=run.pk).update(celery_task_id=result.id or "")


# -- execution ------------------------------------------------------------------------


def execute(
    run_id: int, *, progress: ProgressCallback | None = None, worker_node: str = ""
) -> LoadTestRun | None:
    """Run a queued run in this process; None when it was not queued (already taken).

    `worker_node` is the Celery node name of the worker running it (blank outside a worker):
    when that worker restarts under the same name, it interrupts the run at once.
    """
    now = timezone.now()
    claimed = LoadTestRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker_host=socket.gethostname(),
        worker_pid=os.getpid(),
        worker_node=worker_node,
    )
    if not claimed:
        log.info("run %s is not queued; not starting it again", run_id)
        return None
    run = LoadTestRun.objects.get(pk=run_id)
    if not host_is_allowed(run.config["target_base_url"]):
        return _finish_error(run, "The target host is not in LOADTEST_ALLOWED_HOSTS.")
    problems = config_problems(run.config)
    if problems:
        text = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in problems.items())
        return _finish_error(run, text)
    try:
        result = _drive_engine(run, engine_config_from(run.config), progress)
    except Exception as exc:
        log.exception("run %s failed", run_id)
        return _finish_error(run, f"{type(exc).__name__}: {exc}")
    return finalise(run, result)


def _drive_engine(
    run: LoadTestRun, config: EngineConfig, progress: ProgressCallback | None
) -> RunResult:
    """Run the engine on its own thread; persist each second here, where the ORM may be used."""
    from celery.exceptions import SoftTimeLimitExceeded

    snapshots: queue.Queue[IntervalSnapshot] = queue.Queue()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def engine_thread() -> None:
        try:
            outcome["result"] = run_engine(config, sink=snapshots.put, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=engine_thread, name=f"loadtest-run-{run.pk}", daemon=True)
    thread.start()
    started = timezone.now()
    next_poll = next_beat = time.monotonic()
    reaped = False
    try:
        while thread.is_alive() or not snapshots.empty():
            try:
                snapshot = snapshots.get(timeout=0.2)
            except queue.Empty:
                snapshot = None
            if snapshot is not None and not reaped:
                if store_interval(run, snapshot, started) is None:
                    reaped = _stop_reaped(run.pk, cancel)
                else:
                    next_beat = time.monotonic() + HEARTBEAT_S  # storing it was a heartbeat
                    if progress:
                        progress(run, snapshot)
            if time.monotonic() >= next_poll and not reaped:
                next_poll = time.monotonic() + CANCEL_POLL_S
                beat = time.monotonic() >= next_beat
                if beat:
                    next_beat = time.monotonic() + HEARTBEAT_S
                stop = _stop_requested(run.pk, heartbeat=beat)
                if stop == "reaped":
                    reaped = _stop_reaped(run.pk, cancel)
                elif stop:
                    cancel.set()
    except SoftTimeLimitExceeded:
        cancel.set()
        thread.join(timeout=5)
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _stop_requested(run_id: int, *, heartbeat: bool) -> str:
    """Why the run should stop: "cancel" (asked for), "reaped" (no longer `running`: taken for
    dead while this worker was paused, or reaped under its node name), or "" to go on. Writes
    the heartbeat when `heartbeat` is set."""
    running = LoadTestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    if heartbeat and not running.update(heartbeat_at=timezone.now()):
        return "reaped"
    flag = running.values_list("cancel_requested", flat=True).first()
    if flag is None:
        return "reaped"
    return "cancel" if flag else ""


def _stop_reaped(run_id: int, cancel: threading.Event) -> bool:
    # Its summary was made from the intervals stored so far: writing more would contradict it.
    log.warning("run %s was marked interrupted while this worker ran it; stopping", run_id)
    cancel.set()
    return True


def _ms(value_us: float | None) -> float | None:
    return None if value_us is None else round(value_us / 1000.0, 3)


def store_interval(
    run: LoadTestRun, snapshot: IntervalSnapshot, run_started: Any
) -> RunInterval | None:
    """Store one second of a running run; None, storing nothing, when it is no longer running."""
    service = Histogram.decode(snapshot.service_hist) if snapshot.requests else None
    with transaction.atomic():
        # The UPDATE locks the run's row first: the reaper (which locks it too) either sees
        # this interval in its summary, or this sees the run is no longer running.
        if not LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            requests=F("requests") + snapshot.requests,
            errors=F("errors") + snapshot.errors,
            heartbeat_at=timezone.now(),
        ):
            return None
        return _create_interval(run, snapshot, run_started, service)


def _create_interval(
    run: LoadTestRun, snapshot: IntervalSnapshot, run_started: Any, service: Histogram | None
) -> RunInterval:
    return RunInterval.objects.create(
        run=run,
        index=snapshot.index,
        started_at=run_started + timedelta(seconds=snapshot.start_offset_s),
        length_s=snapshot.length_s,
        requests=snapshot.requests,
        errors=snapshot.errors,
        achieved_rps=snapshot.achieved_rps,
        target=snapshot.target,
        active_users=snapshot.active_users,
        in_flight=snapshot.in_flight,
        late_starts=snapshot.late_starts,
        latency_p50_ms=snapshot.p50_ms if snapshot.requests else None,
        latency_p95_ms=snapshot.p95_ms if snapshot.requests else None,
        latency_p99_ms=snapshot.p99_ms if snapshot.requests else None,
        latency_max_ms=snapshot.max_ms if snapshot.requests else None,
        service_p50_ms=_ms(service.value_at_percentile(50)) if service else None,
        service_p95_ms=_ms(service.value_at_percentile(95)) if service else None,
        service_p99_ms=_ms(service.value_at_percentile(99)) if service else None,
        latency_histogram=snapshot.latency_hist if snapshot.requests else "",
        service_histogram=snapshot.service_hist if snapshot.requests else "",
        errors_by_class=dict(snapshot.errors_by_class),
        cpu_pct=snapshot.cpu_pct,
        loop_lag_ms=snapshot.loop_lag_ms,
    )


def histogram_summary(histogram: Histogram, prefix: str) -> dict[str, float | None]:
    if histogram.total_count == 0:
        return {}
    fields = {
        f"{prefix}_min_ms": _ms(histogram.min),
        f"{prefix}_mean_ms": _ms(histogram.mean),
        f"{prefix}_max_ms": _ms(histogram.max),
        f"{prefix}_stddev_ms": _ms(histogram.stddev),
    }
    for name, percentile in PERCENTILES.items():
        fields[f"{prefix}_{name}_ms"] = _ms(histogram.value_at_percentile(percentile))
    return fields


# Without an explicit error-rate threshold, a run with more errors than this fails: a run
# that mostly failed must never read as passed.
DEFAULT_ERROR_RATE_LIMIT_PCT = 5.0
ANY_SUCCESS_RULE = "any_success"
DEFAULT_ERROR_RATE_RULE = "default_error_rate_pct"
THRESHOLD_CHECKS = (
    ("p95_ms", "p95 latency (ms)", "latency_p95_ms", "max"),
    ("p99_ms", "p99 latency (ms)", "latency_p99_ms", "max"),
    ("error_rate_pct", "error rate (%)", "error_rate_pct", "max"),
    ("min_throughput_rps", "throughput (req/s)", "throughput_rps", "min"),
)


def _verdict(
    name: str, label: str, limit: float, actual: Any, kind: str, *, implicit: bool
) -> dict[str, Any]:
    within = actual is not None and (actual <= limit if kind == "max" else actual >= limit)
    return {
        "name": name,
        "label": label,
        "limit": limit,
        "actual": actual,
        "kind": kind,
        "passed": within,
        "implicit": implicit,
    }


def evaluate_thresholds(
    thresholds: dict[str, Any], summary: dict[str, Any]
) -> list[dict[str, Any]]:
    """One verdict per rule: name, label, limit, actual, whether it passed, and whether it is
    implicit. The implicit rules: at least one request succeeded (always), and the default
    error-rate limit (only when no error-rate threshold is set: an explicit one replaces it)."""
    succeeded = int(summary.get("requests") or 0) - int(summary.get("errors") or 0)
    results = [
        _verdict(
            ANY_SUCCESS_RULE, "at least one request succeeded", 1, succeeded, "min", implicit=True
        )
    ]
    for key, label, metric, kind in THRESHOLD_CHECKS:
        limit = thresholds.get(key)
        if limit is not None:
            results.append(_verdict(key, label, limit, summary.get(metric), kind, implicit=False))
    if thresholds.get("error_rate_pct") is None:
        results.append(
            _verdict(
                DEFAULT_ERROR_RATE_RULE,
                "error rate (%), default limit",
                DEFAULT_ERROR_RATE_LIMIT_PCT,
                summary.get("error_rate_pct"),
                "max",
                implicit=True,
            )
        )
    return results


def _failure_text(item: dict[str, Any], requests: int) -> str:
    if item["name"] == ANY_SUCCESS_RULE:
        what = f"all {requests} requests failed" if requests else "no request was sent"
        return f"No request succeeded: {what} (rule {ANY_SUCCESS_RULE})."
    if item["name"] == DEFAULT_ERROR_RATE_RULE:
        return (
            f"Error rate {item['actual']:g}% is above the default limit of {item['limit']:g}% "
            f"(rule {DEFAULT_ERROR_RATE_RULE}; set an error-rate threshold to choose another)."
        )
    side = "above" if item.get("kind") == "max" else "below"
    actual = "unknown" if item["actual"] is None else f"{item['actual']:g}"
    return (
        f"Threshold not met: {item['label']} is {actual}, {side} {item['limit']:g} "
        f"(rule {item['name']})."
    )


def _rule_text(item: dict[str, Any]) -> str:
    if item["name"] == ANY_SUCCESS_RULE:
        return item["label"]
    sign = "≤" if item.get("kind") == "max" else "≥"
    return f"{item['label']} {sign} {item['limit']:g}"


def verdict_reason(results: list[dict[str, Any]], requests: int) -> str:
    """Which rules decided the verdict: the ones that failed, or every rule that was met."""
    failed = [item for item in results if not item["passed"]]
    if failed:
        return " ".join(_failure_text(item, requests) for item in failed)
    return f"All rules met: {'; '.join(_rule_text(item) for item in results)}."


def _apply_summary(
    run: LoadTestRun,
    *,
    latency: Histogram,
    service: Histogram,
    requests: int,
    errors: int,
    duration_s: float,
) -> None:
    run.requests = requests
    run.errors = errors
    run.duration_s = round(duration_s, 3)
    run.throughput_rps = round(requests / duration_s, 3) if duration_s > 0 else 0.0
    run.error_rate_pct = round(100.0 * errors / requests, 4) if requests else 0.0
    for field, value in {
        **histogram_summary(latency, "latency"),
        **histogram_summary(service, "service"),
    }.items():
        setattr(run, field, value)
    run.latency_histogram = latency.encode() if latency.total_count else ""
    run.service_histogram = service.encode() if service.total_count else ""


def finalise(run: LoadTestRun, result: RunResult) -> LoadTestRun:
    run.refresh_from_db()
    if run.status != RunStatus.RUNNING:
        return run  # reaped while it ran: the recorded seconds' summary stands
    _apply_summary(
        run,
        latency=result.latency,
        service=result.service,
        requests=result.requests,
        errors=result.errors,
        duration_s=result.duration_s,
    )
    # A target may echo a secret header into an error message: keep only the mask.
    secrets_shown = secrets.secret_values(run.config)
    run.errors_by_class = secrets.redacted_errors(_jsonable(result.errors_by_class), secrets_shown)
    run.steps_summary = _jsonable(result.per_step)
    run.health = _jsonable(result.health)
    run.valid = bool(result.health.get("valid", True))
    summary = {
        "requests": run.requests,
        "errors": run.errors,
        "latency_p95_ms": run.latency_p95_ms,
        "latency_p99_ms": run.latency_p99_ms,
        "error_rate_pct": run.error_rate_pct,
        "throughput_rps": run.throughput_rps,
    }
    run.threshold_results = evaluate_thresholds(run.config.get("thresholds", {}), summary)
    thresholds_pass = all(item["passed"] for item in run.threshold_results)
    if result.status == "cancelled":
        run.status, run.passed = RunStatus.CANCELLED, None
        run.status_reason = result.reason or "Cancelled by request."
    elif result.status == "aborted":
        run.status, run.passed = RunStatus.ABORTED, False
        run.status_reason = result.reason
    else:
        run.passed = thresholds_pass
        run.status = RunStatus.PASSED if thresholds_pass else RunStatus.FAILED
        run.status_reason = verdict_reason(run.threshold_results, run.requests)
    run.status_reason = secrets.redact(run.status_reason, secrets_shown)
    run.finished_at = timezone.now()
    return _save_if_running(run)


def _save_if_running(run: LoadTestRun) -> LoadTestRun:
    """Save a run's end unless it was reaped meanwhile (a late finalise must not overwrite
    `interrupted` and its summary of the recorded seconds)."""
    running = LoadTestRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING)
    with transaction.atomic():
        if running.exists():
            run.save()
            return run
    run.refresh_from_db()
    return run


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _finish_error(run: LoadTestRun, reason: str) -> LoadTestRun:
    LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.ERROR, status_reason=reason[:2000], finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


# -- cancellation and reaping ------------------------------------------------------------


def request_cancel(run: LoadTestRun) -> bool:
    """Cancel a queued run at once, or ask a running one to stop; False when it had ended."""
    now = timezone.now()
    if LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        status_reason="Cancelled before it started.",
    ):
        return True
    return bool(
        LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            cancel_requested=True
        )
    )


def expire_queued_run(run: LoadTestRun, *, workers: waiting.QueueWorkers | None = None) -> bool:
    """End `run` as error when it has waited LOADTEST_QUEUE_TIMEOUT_S for a worker; the reason
    says whether any worker was alive on the queue. `run` is updated in place. Pass `workers`
    when the caller has already looked them up."""
    if not waiting.overdue(run):
        return False
    reason = waiting.timeout_reason(workers or waiting.queue_workers())
    now = timezone.now()
    # Conditional, like execute's claim: of a worker taking the run and this, exactly one wins.
    if not LoadTestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.ERROR, status_reason=reason, finished_at=now
    ):
        run.refresh_from_db()
        return False
    run.status, run.status_reason, run.finished_at = RunStatus.ERROR, reason, now
    return True


def expire_queued_runs() -> list[int]:
    """End every run that waited LOADTEST_QUEUE_TIMEOUT_S for a worker as error (housekeeping);
    one query when none has."""
    cutoff = timezone.now() - timedelta(seconds=waiting.queue_timeout_s())
    overdue = list(
        LoadTestRun.objects.filter(status=RunStatus.QUEUED, created_at__lte=cutoff).only(
            "pk", "status", "created_at"
        )
    )
    if not overdue:
        return []
    workers = waiting.queue_workers()
    return [run.pk for run in overdue if expire_queued_run(run, workers=workers)]


def merged_histograms(intervals: Iterable[RunInterval]) -> tuple[Histogram, Histogram]:
    latency, service = Histogram(), Histogram()
    for interval in intervals:
        if interval.latency_histogram:
            latency.merge(Histogram.decode(interval.latency_histogram))
        if interval.service_histogram:
            service.merge(Histogram.decode(interval.service_histogram))
    return latency, service


def reap_stale_runs(*, stale_after_s: float = HEARTBEAT_STALE_S) -> list[int]:
    """Mark running runs whose worker stopped reporting as interrupted, keeping their data."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    candidates = LoadTestRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    return [
        run_id
        for run_id in candidates.values_list("pk", flat=True)
        if _interrupt(run_id, stale_before=cutoff)
    ]


def reap_node_runs(node: str) -> list[int]:
    """Interrupt at once the runs worker `node` left `running`: called as that worker starts,
    when whatever ran them under this name is gone (Celery node names are unique)."""
    if not node:
        return []
    candidates = LoadTestRun.objects.filter(status=RunStatus.RUNNING, worker_node=node)
    return [run_id for run_id in candidates.values_list("pk", flat=True) if _interrupt(run_id)]


def _interrupt(run_id: int, *, stale_before: Any = None) -> bool:
    """Mark one running run interrupted, its summary made of the seconds it recorded. With
    `stale_before`, only if its heartbeat is still older than that: under the row lock, so a
    run that has just reported is never reaped."""
    with transaction.atomic():
        run = LoadTestRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return False
        if stale_before is not None and run.heartbeat_at and run.heartbeat_at >= stale_before:
            return False
        recorded = _summarise_recorded(run)
        if stale_before is None:
            cause = f"The worker {run.worker_node} restarted and found the run still running"
        else:
            cause = f"The worker ({run.worker_host} pid {run.worker_pid}) stopped reporting"
        run.status = RunStatus.INTERRUPTED
        run.status_reason = f"{cause}; the summary covers the {recorded} seconds recorded."
        run.finished_at = timezone.now()
        run.save()
    return True


def _summarise_recorded(run: LoadTestRun) -> int:
    """Set a run's summary from its stored intervals; returns how many there are."""
    intervals = list(run.intervals.all())
    latency, service = merged_histograms(intervals)
    errors_by_class: dict[str, dict[str, Any]] = {}
    for interval in intervals:
        for error_class, count in interval.errors_by_class.items():
            entry = errors_by_class.setdefault(error_class, {"count": 0, "sample": ""})
            entry["count"] += count
    _apply_summary(
        run,
        latency=latency,
        service=service,
        requests=sum(i.requests for i in intervals),
        errors=sum(i.errors for i in intervals),
        duration_s=sum(i.length_s for i in intervals),
    )
    run.errors_by_class = errors_by_class
    return len(intervals)


# -- summaries and exports --------------------------------------------------------------


def summary_dict(run: LoadTestRun) -> dict[str, Any]:
    """The run's summary as one JSON object (CLI --json, downloads)."""
    return {
        "id": run.pk,
        "name": run.name,
        "status": run.status,
        "status_reason": secrets.redact_config_text(run.status_reason, run.config),
        "trigger": run.trigger,
        "passed": run.passed,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
        "requests": run.requests,
        "errors": run.errors,
        "error_rate_pct": run.error_rate_pct,
        "throughput_rps": run.throughput_rps,
        "latency_ms": run.percentiles("latency"),
        "service_time_ms": run.percentiles("service"),
        "errors_by_class": run.errors_by_class,
        "steps": run.steps_summary,
        "thresholds": run.threshold_results,
        "health": run.health,
        "valid": run.valid,
        # Only the engine sees secret header values; everything that leaves shows the mask.
        "config": secrets.masked_config(run.config),
    }


def exit_code(run: LoadTestRun) -> int:
    """0: thresholds pass, 1: they fail, 2: the run did not complete (error, cancel, ...)."""
    return FINISHED_EXIT_CODES.get(RunStatus(run.status), 2)


INTERVAL_COLUMNS = (
    "index", "started_at", "length_s", "requests", "errors", "achieved_rps", "target",
    "active_users", "in_flight", "late_starts", "latency_p50_ms", "latency_p95_ms",
    "latency_p99_ms", "latency_max_ms", "service_p50_ms", "service_p95_ms", "service_p99_ms",
    "cpu_pct", "loop_lag_ms",
)  # fmt: skip


def intervals_csv(run: LoadTestRun) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*INTERVAL_COLUMNS, "errors_by_class"])
    for row in run.intervals.values_list(*INTERVAL_COLUMNS, "errors_by_class").iterator():
        *values, errors_by_class = row
        writer.writerow(
            [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
            + [json.dumps(errors_by_class, sort_keys=True)]
        )
    return out.getvalue()


def histogram_log(run: LoadTestRun) -> str:
    """The run's per-second latency histograms in HdrHistogram interval-log format."""
    start = run.started_at.timestamp() if run.started_at else 0.0
    rows = run.intervals.exclude(latency_histogram="").values_list(
        "index", "length_s", "latency_histogram"
    )
    return write_interval_log(
        ((float(index), length, encoded) for index, length, encoded in rows.iterator()),
        start_time_s=start,
    )
