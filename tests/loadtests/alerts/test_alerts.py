from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.forms import modelform_factory
from django.utils import timezone
from django.utils.html import escape

from loadtests import alerts, events, lifecycle, services, tasks
from loadtests.admin import DefinitionForm
from loadtests.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    DeliveryStatus,
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStep,
    RunStatus,
    RunTrigger,
)
from tests.loadtests.alerts.conftest import Webhook

SECRET = "Bearer s3cret-token-for-alerts"


def make_run(
    definition: LoadTestDefinition,
    *,
    p95: float,
    status: str = RunStatus.PASSED,
    error_rate: float = 0.0,
    trigger: str = RunTrigger.MANUAL,
    threshold_results: list[dict[str, Any]] | None = None,
) -> LoadTestRun:
    now = timezone.now()
    return LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config={},
        status=status,
        trigger=trigger,
        started_at=now,
        finished_at=now,
        requests=1000,
        errors=int(error_rate * 10),
        throughput_rps=100.0,
        error_rate_pct=error_rate,
        latency_p50_ms=p95 / 2,
        latency_p95_ms=p95,
        latency_p99_ms=p95 * 1.5,
        threshold_results=threshold_results or [],
        passed=status == RunStatus.PASSED,
    )


def finish(run: LoadTestRun) -> None:
    """What the worker does at the end of every run."""
    events.send(events.run_finished, run.pk)


def regress(definition: LoadTestDefinition) -> tuple[LoadTestRun, Alert]:
    make_run(definition, p95=100.0)
    run = make_run(definition, p95=150.0)
    finish(run)
    return run, Alert.objects.get(run=run)


@pytest.fixture
def secret_definition(definition: LoadTestDefinition, settings: Any) -> LoadTestDefinition:
    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    LoadTestStep.objects.create(
        definition=definition, name="private", path="/ok", headers={"Authorization": SECRET}
    )
    return definition


def test_it_creates_one_regression_alert_naming_the_metric_and_numbers(
    definition: LoadTestDefinition,
) -> None:
    run, alert = regress(definition)
    finish(run)  # a second signal for the same run adds nothing

    assert Alert.objects.count() == 1
    assert alert.kind == AlertKind.REGRESSION and alert.definition == definition
    assert "p95 100.0 ms -> 150.0 ms" in alert.message
    assert alert.details["run"]["latency_p95_ms"] == 150.0
    assert alert.deliveries.count() == 0  # no channel configured


def test_it_creates_no_alert_for_an_improvement_or_a_first_run(
    definition: LoadTestDefinition,
) -> None:
    first = make_run(definition, p95=100.0)
    finish(first)
    better = make_run(definition, p95=50.0)
    finish(better)
    assert Alert.objects.count() == 0


def test_it_creates_a_threshold_alert_for_a_failed_scheduled_run_only(
    definition: LoadTestDefinition,
) -> None:
    failed = [
        {"name": "p95", "label": "p95 (ms)", "limit": 200, "actual": 250.0, "kind": "max",
         "passed": False},
        {"name": "error_rate", "label": "error rate (%)", "limit": 1, "actual": 0.0,
         "kind": "max", "passed": True},
    ]  # fmt: skip
    manual = make_run(definition, p95=250.0, status=RunStatus.FAILED, threshold_results=failed)
    finish(manual)
    assert Alert.objects.count() == 0

    scheduled = make_run(
        definition,
        p95=250.0,
        status=RunStatus.FAILED,
        trigger=RunTrigger.SCHEDULE,
        threshold_results=failed,
    )
    finish(scheduled)
    alert = Alert.objects.get()
    assert (alert.run, alert.kind) == (scheduled, AlertKind.THRESHOLD)
    assert "p95 (ms) is 250, above 200" in alert.message
    assert "error rate" not in alert.message


def test_it_retries_the_webhook_with_back_off_until_it_is_sent_without_secrets(
    secret_definition: LoadTestDefinition, webhook: Webhook
) -> None:
    webhook.failures = 2
    secret_definition.alert_webhook_url = webhook.url + "?token=hook-token-123"
    secret_definition.save()
    run, alert = regress(secret_definition)
    delivery = AlertDelivery.objects.get(alert=alert)
    assert delivery.channel == "webhook" and "hook-token-123" not in delivery.destination

    start = timezone.now()
    assert alerts.deliver_due(start) == {"sent": 0, "retry": 1, "failed": 0}
    assert alerts.deliver_due(start) == {"sent": 0, "retry": 0, "failed": 0}  # not due yet
    assert alerts.deliver_due(start + timedelta(seconds=2)) == {"sent": 0, "retry": 1, "failed": 0}
    assert alerts.deliver_due(start + timedelta(seconds=5)) == {"sent": 0, "retry": 0, "failed": 0}
    assert alerts.deliver_due(start + timedelta(seconds=6)) == {"sent": 1, "retry": 0, "failed": 0}

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 3, "")
    assert len(webhook.bodies) == 3
    sent = webhook.payloads()[-1]
    assert sent["definition"] == "smoke" and sent["run_id"] == run.pk
    assert sent["kind"] == "regression" and "p95" in sent["message"]
    assert sent["run_url"].endswith(f"/runs/{run.pk}/")
    assert sent["numbers"]["run"]["latency_p95_ms"] == 150.0
    for body, headers in zip(webhook.bodies, webhook.headers, strict=True):
        assert b"s3cret-token" not in body
        assert "Authorization" not in headers


def test_the_delivery_task_answers_to_beats_name_and_queues_itself_for_the_next_retry(
    secret_definition: LoadTestDefinition,
    webhook: Webhook,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Beat's database rows and queued messages hold the name the task was registered under.
    assert tasks.deliver_alerts.name == settings.CELERY_BEAT_SCHEDULE["deliver-due-alerts"]["task"]
    webhook.failures = 1
    secret_definition.alert_webhook_url = webhook.url
    secret_definition.save()
    regress(secret_definition)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.deliver_alerts() == {"sent": 0, "retry": 1, "failed": 0}
    queued = [cb for cb in callbacks if cb.__qualname__ == "queue_delivery.<locals>.send"]
    assert len(queued) == 1  # deliver_alerts again, when the retry is due


def test_it_records_the_failure_after_the_last_attempt(
    secret_definition: LoadTestDefinition, webhook: Webhook, settings: Any, admin_client: Any
) -> None:
    settings.ALERT_MAX_ATTEMPTS = 2
    webhook.failures = 99
    secret_definition.alert_webhook_url = webhook.url
    secret_definition.save()
    regress(secret_definition)

    start = timezone.now()
    alerts.deliver_due(start)
    assert alerts.deliver_due(start + timedelta(seconds=2)) == {"sent": 0, "retry": 0, "failed": 1}
    assert alerts.deliver_due(start + timedelta(hours=1))["failed"] == 0  # never again

    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)
    assert "HTTP 500" in delivery.last_error and "Gave up after 2 attempts" in delivery.last_error
    assert len(webhook.bodies) == 2
    assert "Gave up after 2 attempts" in admin_client.get("/").content.decode()


def test_it_refuses_a_webhook_host_off_the_allow_list_at_save_and_at_send(
    definition: LoadTestDefinition, webhook: Webhook, settings: Any
) -> None:
    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    form_class = modelform_factory(
        LoadTestDefinition, form=DefinitionForm, fields=["alert_emails", "alert_webhook_url"]
    )
    form = form_class({"alert_emails": "", "alert_webhook_url": webhook.url}, instance=definition)
    assert not form.is_valid()
    assert "alert_webhook_url" in form.errors
    assert "ALERT_WEBHOOK_ALLOWED_HOSTS" in form.errors["alert_webhook_url"][0]

    # Stored behind the form's back: still never contacted.
    LoadTestDefinition.objects.filter(pk=definition.pk).update(alert_webhook_url=webhook.url)
    definition.refresh_from_db()
    regress(definition)
    alerts.deliver_due(timezone.now())
    delivery = AlertDelivery.objects.get()
    assert "not in ALERT_WEBHOOK_ALLOWED_HOSTS" in delivery.last_error
    assert webhook.bodies == []


def test_it_refuses_a_bad_email_address_naming_the_field(definition: LoadTestDefinition) -> None:
    form_class = modelform_factory(
        LoadTestDefinition, form=DefinitionForm, fields=["alert_emails", "alert_webhook_url"]
    )
    form = form_class({"alert_emails": "ops@example.com, not-an-address"}, instance=definition)
    assert not form.is_valid()
    assert "alert_emails" in form.errors["alert_emails"][0]
    assert "not-an-address" in form.errors["alert_emails"][0]


def test_it_emails_the_alert(definition: LoadTestDefinition) -> None:
    definition.alert_emails = "ops@example.com, perf@example.com"
    definition.save()
    run, _ = regress(definition)

    assert alerts.deliver_due()["sent"] == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com", "perf@example.com"]
    assert "smoke" in message.subject
    assert f"/runs/{run.pk}/" in message.body and "150.0 ms" in message.body
    assert AlertDelivery.objects.get().status == DeliveryStatus.SENT


def test_it_acknowledges_an_alert_recording_who_and_when(
    definition: LoadTestDefinition, admin_client: Any, admin_user: Any
) -> None:
    _, alert = regress(definition)
    assert escape(alert.message) in admin_client.get("/").content.decode()

    response = admin_client.post(f"/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user and alert.acknowledged_at is not None
    assert 'id="alerts"' not in admin_client.get("/").content.decode()


def test_it_lets_only_users_with_change_alert_acknowledge(
    definition: LoadTestDefinition, viewer_client: Any
) -> None:
    _, alert = regress(definition)
    page = viewer_client.get("/").content.decode()
    assert escape(alert.message) in page and "Acknowledge</button>" not in page

    assert viewer_client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403
    assert viewer_client.get(f"/alerts/{alert.pk}/acknowledge/").status_code == 405
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_it_alerts_on_a_real_run_that_regressed_and_queues_the_delivery_after_commit(
    definition: LoadTestDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    # A baseline far faster than any real request: the run below must regress.
    make_run(definition, p95=0.001)
    definition.alert_emails = "ops@example.com"
    definition.save()
    run = services.create_run(definition)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lifecycle.execute(run.pk)

    alert = Alert.objects.get(run=run)
    assert alert.kind == AlertKind.REGRESSION
    assert alert.deliveries.get().channel == "email"
    queued = [cb for cb in callbacks if cb.__qualname__ == "queue_delivery.<locals>.send"]
    assert len(queued) == 1  # deliver_alerts, once the alert is committed


def test_the_admin_lists_and_acknowledges_alerts(
    definition: LoadTestDefinition, admin_client: Any, admin_user: Any
) -> None:
    _, alert = regress(definition)
    assert admin_client.get("/admin/loadtests/alert/").status_code == 200
    assert admin_client.get(f"/admin/loadtests/alert/{alert.pk}/change/").status_code == 200

    response = admin_client.post(
        "/admin/loadtests/alert/",
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user
