"""A monitor leak alert goes out through the alert channels of the load tests its target is tied
to: email and the webhook (allow-listed, without credentials), with retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail

from loadtests.models import LoadTestDefinition
from profiling import monitoring, tasks, trend
from profiling.models import MonitorAlert, ProfileTarget
from tests.loadtests.alerts.conftest import Webhook, webhook  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def leak() -> trend.Trend:
    times = [float(t) for t in range(0, 3600, 30)]
    return trend.fit(times, [100e6 + 50_000 * t for t in times], threshold_mb_per_min=1.0)


@pytest.fixture
def tied_target(webhook: Webhook) -> ProfileTarget:  # noqa: F811 - the fixture
    definition = LoadTestDefinition.objects.create(
        name="checkout",
        target_base_url="http://127.0.0.1:9",
        alert_emails="ops@example.com, dev@example.com",
        alert_webhook_url=webhook.url + "?token=hook-token-123",
    )
    target = ProfileTarget.objects.create(name="api", pid=1)
    target.load_tests.add(definition)
    return target


def test_it_sends_the_alert_by_email_and_webhook_once_each(
    tied_target: ProfileTarget,
    webhook: Webhook,  # noqa: F811 - the fixture
) -> None:
    alert = monitoring.raise_alert(tied_target, leak(), timedelta(hours=1))
    assert alert is not None
    assert monitoring.raise_alert(tied_target, leak(), timedelta(hours=1)) is None  # one open
    assert sorted(alert.deliveries) == [
        "email:dev@example.com",
        "email:ops@example.com",
        f"webhook:{webhook.url}",
    ]
    assert tasks.deliver_monitor_alert(alert.pk) is None
    alert.refresh_from_db()
    assert {d["status"] for d in alert.deliveries.values()} == {"sent"}
    assert sorted(m.to[0] for m in mail.outbox) == ["dev@example.com", "ops@example.com"]
    assert "Memory leak: api" in mail.outbox[0].subject
    (body,) = webhook.payloads()
    assert (body["target"], body["kind"]) == ("api", "memory_leak")
    assert body["numbers"]["verdict"] == "leak"
    assert "hook-token-123" not in webhook.bodies[0].decode()
    assert monitoring.deliver(alert.pk) is None  # nothing pending: nothing sent twice
    assert len(webhook.bodies) == 1


def test_it_retries_a_failing_webhook_with_back_off(
    tied_target: ProfileTarget,
    webhook: Webhook,  # noqa: F811 - the fixture
    settings: Any,
) -> None:
    webhook.failures = 1
    alert = monitoring.raise_alert(tied_target, leak(), timedelta(hours=1))
    assert monitoring.deliver(alert.pk) == 2.0
    alert.refresh_from_db()
    hook = alert.deliveries[f"webhook:{webhook.url}"]
    assert (hook["status"], hook["attempts"]) == ("pending", 1)
    assert "HTTP 500" in hook["error"]
    assert monitoring.deliver(alert.pk) is None
    alert.refresh_from_db()
    assert alert.deliveries[f"webhook:{webhook.url}"]["status"] == "sent"
    assert MonitorAlert.objects.count() == 1
