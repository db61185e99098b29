"""Regression alerts: after each run, judge it against its definition's baseline by the compare
page's rule (compare.verdict), and tell the definition's people by email and/or webhook.

An alert is one row per run and kind (regression, or threshold failure of a scheduled run),
shown on the overview until acknowledged. Each configured channel is an AlertDelivery that
the Celery task `deliver_alerts` (loadtests/tasks.py, where its queueing lives too) sends,
retrying with exponential back-off (2, 4, 8 ... s) up to ALERT_MAX_ATTEMPTS; every failure is
recorded on the delivery. The channels themselves (email, webhook, and their validation) are
offgridperf.alerting's, shared with the profiler's monitor. Nothing secret goes out: the
payload is built from the run's numbers only (never headers, DSNs or tokens), and a webhook
goes only to a host in ALERT_WEBHOOK_ALLOWED_HOSTS, checked when the definition is saved and
again before each POST.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from loadtests import compare, pages
from loadtests.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    DeliveryStatus,
    LoadTestDefinition,
    LoadTestRun,
    RunStatus,
    RunTrigger,
)
from offgridperf.alerting import (
    DeliveryError,
    backoff_s,
    email,
    parse_emails,
    post_webhook,
    shown_url,
)

log = logging.getLogger(__name__)

# A claimed delivery is not picked again for this long, so a crashed sender's delivery retries.
CLAIM_LEASE_S = 60
OPEN_ALERTS_SHOWN = 20
# Runs whose numbers are whole enough to compare (an interrupted or cancelled run is not).
COMPARED_STATUSES = (RunStatus.PASSED, RunStatus.FAILED, RunStatus.ABORTED)
THRESHOLD_FAILED_STATUSES = (RunStatus.FAILED, RunStatus.ABORTED)


# -- detection (on run_finished) -----------------------------------------------------------


def alert_finished_run(run_id: int) -> list[Alert]:
    """The alerts a finished run calls for, made now (loadtests.events.run_finished's listener
    in loadtests/tasks.py queues their delivery); none when the run is gone."""
    run = LoadTestRun.objects.select_related("definition").filter(pk=run_id).first()
    return evaluate_run(run) if run is not None else []


def evaluate_run(run: LoadTestRun) -> list[Alert]:
    """Create the alerts this finished run calls for; the ones that already exist are kept."""
    definition = run.definition
    if definition is None:
        return []
    found = [regression_alert(run, definition), threshold_alert(run, definition)]
    return [alert for alert in found if alert is not None]


def regression_alert(run: LoadTestRun, definition: LoadTestDefinition) -> Alert | None:
    if run.status not in COMPARED_STATUSES:
        return None
    baseline = pages.baseline_of(definition, before=run, full=False).run
    if baseline is None or baseline.pk == run.pk:
        return None
    # Exactly what the compare page does with a = baseline, b = this run.
    values_a, values_b = pages.summary_values(baseline), pages.summary_values(run)
    run_noise = compare.noise(pages.noise_history(baseline, exclude=[run.pk]))
    verdict = compare.verdict(values_a, values_b, run_noise)
    if verdict.outcome != "regression":
        return None
    message = (
        f"{definition.name}: run #{run.pk} regressed against baseline run #{baseline.pk}: "
        f"p95 {_ms(values_a['latency_p95_ms'])} -> {_ms(values_b['latency_p95_ms'])}, "
        f"error rate {_pct(values_a['error_rate_pct'])} -> {_pct(values_b['error_rate_pct'])}. "
        + " ".join(verdict.reasons)
    )
    details = {
        "baseline_run_id": baseline.pk,
        "noise_p95_ms": run_noise,
        "baseline": values_a,
        "run": values_b,
        "reasons": list(verdict.reasons),
    }
    return _create_alert(run, definition, AlertKind.REGRESSION, message, details)


def threshold_alert(run: LoadTestRun, definition: LoadTestDefinition) -> Alert | None:
    if run.trigger != RunTrigger.SCHEDULE or run.status not in THRESHOLD_FAILED_STATUSES:
        return None
    failed = [item for item in run.threshold_results or [] if not item.get("passed")]
    rules = "; ".join(_threshold_text(item) for item in failed) or run.get_status_display()
    message = f"{definition.name}: scheduled run #{run.pk} failed its thresholds: {rules}."
    details = {
        "status": run.status,
        "failed_thresholds": [
            {key: item.get(key) for key in ("name", "label", "limit", "actual", "kind")}
            for item in failed
        ],
        "run": pages.summary_values(run),
    }
    return _create_alert(run, definition, AlertKind.THRESHOLD, message, details)


def _threshold_text(item: dict[str, Any]) -> str:
    actual = "unknown" if item.get("actual") is None else f"{item['actual']:g}"
    side = "above" if item.get("kind") == "max" else "below"
    return f"{item.get('label', item.get('name'))} is {actual}, {side} {item.get('limit'):g}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}%"


def _create_alert(
    run: LoadTestRun,
    definition: LoadTestDefinition,
    kind: str,
    message: str,
    details: dict[str, Any],
) -> Alert | None:
    with transaction.atomic():
        alert, created = Alert.objects.get_or_create(
            run=run,
            kind=kind,
            defaults={"definition": definition, "message": message, "details": details},
        )
        if not created:
            return None
        for channel, destination in channels(definition):
            AlertDelivery.objects.create(alert=alert, channel=channel, destination=destination)
    log.warning("alert: %s", message)
    return alert


def channels(definition: LoadTestDefinition) -> list[tuple[str, str]]:
    found = []
    emails = parse_emails(definition.alert_emails or "")
    if emails:
        found.append(("email", ", ".join(emails)))
    if definition.alert_webhook_url:
        found.append(("webhook", shown_url(definition.alert_webhook_url)))
    return found


# -- delivery ------------------------------------------------------------------------------


def due_deliveries(now: datetime) -> QuerySet[AlertDelivery]:
    return AlertDelivery.objects.filter(status=DeliveryStatus.PENDING).exclude(
        next_attempt_at__gt=now
    )


def deliver_due(
    now: datetime | None = None, *, queue_retry: Callable[[float], None] | None = None
) -> dict[str, int]:
    """Attempt each due delivery once; returns how many were sent, retried later or failed.
    `queue_retry(seconds)` is told when the soonest retry is due (the task queues itself again)."""
    now = now or timezone.now()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    soonest: float | None = None
    for delivery_id in list(due_deliveries(now).values_list("pk", flat=True)):
        outcome, retry_in = deliver_one(delivery_id, now)
        if outcome:
            counts[outcome] += 1
        if retry_in is not None:
            soonest = retry_in if soonest is None else min(soonest, retry_in)
    if soonest is not None and queue_retry is not None:
        queue_retry(soonest)
    return counts


def deliver_one(delivery_id: int, now: datetime) -> tuple[str | None, float | None]:
    """One attempt at one delivery, claimed first so that two senders never both send it."""
    delivery = AlertDelivery.objects.select_related("alert__run", "alert__definition").get(
        pk=delivery_id
    )
    claimed = (
        due_deliveries(now)
        .filter(pk=delivery.pk, attempts=delivery.attempts)
        .update(
            attempts=delivery.attempts + 1,
            next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S),
        )
    )
    if not claimed:
        return None, None
    delivery.attempts += 1
    try:
        send_delivery(delivery)
    except DeliveryError as exc:
        return _record_failure(delivery, str(exc), now)
    delivery.status, delivery.sent_at, delivery.next_attempt_at = DeliveryStatus.SENT, now, None
    delivery.last_error = ""
    delivery.save(update_fields=["status", "sent_at", "next_attempt_at", "last_error"])
    return "sent", None


def _record_failure(delivery: AlertDelivery, error: str, now: datetime) -> tuple[str, float | None]:
    log.warning("alert delivery %s attempt %s failed: %s", delivery.pk, delivery.attempts, error)
    delivery.last_error = f"Attempt {delivery.attempts}: {error}"
    if delivery.attempts >= settings.ALERT_MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        delivery.last_error += f" Gave up after {delivery.attempts} attempts (ALERT_MAX_ATTEMPTS)."
        delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
        return "failed", None
    wait = backoff_s(delivery.attempts)
    delivery.next_attempt_at = now + timedelta(seconds=wait)
    delivery.save(update_fields=["next_attempt_at", "last_error"])
    return "retry", float(wait)


def send_delivery(delivery: AlertDelivery) -> None:
    alert = delivery.alert
    if delivery.channel == "email":
        send_email(alert, parse_emails(delivery.destination))
        return
    definition = alert.definition
    if definition is None or not definition.alert_webhook_url:
        raise DeliveryError("The definition no longer has a webhook.")
    post_webhook(definition.alert_webhook_url, payload(alert))


def run_url(alert: Alert) -> str:
    return settings.OFFGRIDPERF_BASE_URL.rstrip("/") + reverse("loadtests:run", args=[alert.run_id])


def payload(alert: Alert) -> dict[str, Any]:
    """What the webhook receives: names, ids, the message and numbers, never a secret."""
    return {
        "definition": alert.definition.name if alert.definition else alert.run.name,
        "run_id": alert.run_id,
        "kind": alert.kind,
        "message": alert.message,
        "run_url": run_url(alert),
        "numbers": alert.details,
        "created_at": alert.created_at.isoformat(),
    }


def send_email(alert: Alert, addresses: list[str]) -> None:
    subject = f"[offgridperf] {alert.get_kind_display()}: {payload(alert)['definition']}"
    email(subject, f"{alert.message}\n\nRun: {run_url(alert)}\n", addresses)


# -- the overview --------------------------------------------------------------------------


def open_alerts(limit: int = OPEN_ALERTS_SHOWN) -> list[Alert]:
    """Unacknowledged alerts, newest first, with their deliveries (two queries)."""
    return list(
        Alert.objects.filter(acknowledged_at=None)
        .select_related("definition")
        .prefetch_related("deliveries")[:limit]
    )


def acknowledge(alert_id: int, user: Any) -> bool:
    """Record who acknowledged the alert and when; False when it was already acknowledged."""
    return bool(
        Alert.objects.filter(pk=alert_id, acknowledged_at=None).update(
            acknowledged_at=timezone.now(), acknowledged_by=user
        )
    )
