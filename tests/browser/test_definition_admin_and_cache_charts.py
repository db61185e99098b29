"""A real browser on the definition admin and the Cache page: only the chosen load model's
fields show, headers are name/value rows, the stages sit by the load model and set the
duration; the run changelist fits 1400 px; the Cache page draws a chart per strategy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from emissions.cache import BATCH
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStage, LoadTestStep
from offgridperf import cache
from tests.browser.session import SCREENSHOTS, logged_in_page, needs_chromium

PASSWORD = "pw-browser-789"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def seed(django_user_model: Any) -> LoadTestDefinition:
    """A superuser, a closed-model definition with a secret header and two stages, a run
    going on, and a few cache operations flushed to Redis."""
    django_user_model.objects.create_superuser("author", "a@example.com", PASSWORD)
    definition = LoadTestDefinition.objects.create(
        name="authored", target_base_url="http://127.0.0.1:8001", duration_s=30
    )
    LoadTestStep.objects.create(
        definition=definition,
        name="home",
        path="/ok",
        headers={"Authorization": "Bearer browser-secret-token", "Accept": "text/plain"},
    )
    LoadTestStage.objects.create(definition=definition, order=0, duration_s=10, target=5)
    LoadTestStage.objects.create(definition=definition, order=1, duration_s=20, target=5)
    LoadTestRun.objects.create(
        definition=definition,
        name="authored",
        config={},
        status="running",
        started_at=timezone.now() - timedelta(seconds=30),
    )
    cache.clear_all()
    BATCH.set("k", 1)
    BATCH.get("k")
    BATCH.get("missing")
    cache.flush_metrics()
    return definition


def hidden(page: Any, field: str) -> bool:
    return page.eval_on_selector(f".form-row.field-{field}", "row => row.hidden")


def test_an_author_sees_only_the_chosen_models_fields_in_a_real_browser(
    live_server: Any, django_user_model: Any
) -> None:
    definition = seed(django_user_model)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    change = f"{base}/admin/loadtests/loadtestdefinition/{definition.pk}/change/"
    # No ORM below until the browser is closed: Playwright's sync API runs an event loop.
    with logged_in_page(
        base,
        "author",
        PASSWORD,
        login_path="/admin/login/?next=/admin/",
        landing_path="/admin/",
        submit="input[type=submit]",
        viewport={"width": 1400, "height": 1000},
    ) as (page, errors):
        page.goto(change)
        # Closed model: users and think times, no arrival rate.
        assert not hidden(page, "users")
        assert hidden(page, "rate_rps")
        page.select_option("#id_load_model", "open")
        assert hidden(page, "users")
        assert not hidden(page, "rate_rps")
        page.select_option("#id_load_model", "closed")
        assert not hidden(page, "users")

        # The stages follow the load model and set the duration.
        follows = page.evaluate(
            "() => document.querySelector('fieldset.load-model').nextElementSibling.id"
        )
        assert follows == "stages-group"
        assert page.eval_on_selector("#id_duration_s", "input => input.readOnly")
        assert page.input_value("#id_duration_s") == "30"
        page.fill("input[name='stages-1-duration_s']", "50")
        page.dispatch_event("input[name='stages-1-duration_s']", "input")
        assert page.input_value("#id_duration_s") == "60"
        assert "60 s" in page.inner_text("#duration-from-stages")

        # Headers as rows; the secret shown masked; a row added and removed.
        rows = page.locator("#steps-group .header-rows").first
        names = rows.locator("input[name$='headers__name']")
        assert names.count() == 3  # two headers and a blank row
        shown = {
            names.nth(i).input_value(): rows.locator("input[name$='headers__value']")
            .nth(i)
            .input_value()
            for i in range(2)
        }
        assert shown == {"Authorization": "••••", "Accept": "text/plain"}
        assert "browser-secret-token" not in page.content()
        rows.locator(".header-add").click()
        assert names.count() == 4
        rows.locator(".header-remove").last.click()
        assert names.count() == 3

        assert page.locator("#run-now").is_visible()
        assert page.locator("input[name=_saveasnew]").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "admin-definition.png"), full_page=True)

        page.goto(f"{base}/admin/loadtests/loadtestrun/")
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        page.screenshot(path=str(SCREENSHOTS / "admin-runs.png"), full_page=True)

        page.goto(f"{base}/cache/")
        page.wait_for_function("() => Chart.getChart('cache-chart-batch')")
        labels = page.evaluate(
            "() => Chart.getChart('cache-chart-batch').data.datasets.map(d => d.label)"
        )
        assert labels == ["hit rate %", "p50 ms", "p99 ms"]
        assert page.locator(".cache-runs a").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "cache.png"), full_page=True)
        assert errors == []
