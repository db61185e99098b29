from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client

from loadtests.models import LoadTestDefinition, LoadTestStep
from loadtests.secrets import MASK
from tests.loadtests.admin_forms import ADD, admin_form

from .conftest import staff_with

pytestmark = pytest.mark.django_db


def two_step_flow(target_url: str, **overrides: Any) -> dict[str, Any]:
    return admin_form(
        target_url,
        **{
            "mode": "flow",
            "data_order": "sequential",
            "steps-TOTAL_FORMS": "2",
            "steps-0-name": "read",
            "steps-0-path": "/json",
            "steps-0-expected_statuses": "",
            "steps-0-extract": "item_id json $.data.id",
            "steps-1-order": "1",
            "steps-1-name": "echo",
            "steps-1-method": "GET",
            "steps-1-path": "/echo?item={{ item_id }}",
            "steps-1-weight": "1",
            "steps-1-expected_statuses": "200",
            "steps-1-headers": "{}",
            "steps-1-poll_until_path": "$.method",
            "steps-1-poll_until_value": "GET",
            "steps-1-poll_max_attempts": "3",
            **overrides,
        },
    )


def steps_formset(response: Any) -> Any:
    """The steps inline's formset on an admin definition page (inlines may be reordered)."""
    return next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.prefix == "steps"
    )


def page(response: Any) -> str:
    return html.unescape(response.content.decode())


def test_it_saves_a_flow_with_extractions_and_a_poll(admin_client: Any, target_url: str) -> None:
    response = admin_client.post(ADD, two_step_flow(target_url))
    assert response.status_code == 302, page(response)[:3000]
    definition = LoadTestDefinition.objects.get(name="checkout")
    read, echo = definition.steps.all()
    assert definition.mode == "flow"
    assert read.extract == [{"variable": "item_id", "from": "json", "expression": "$.data.id"}]
    assert read.expected_statuses == ""
    assert echo.poll == {"until_path": "$.method", "until_value": "GET", "max_attempts": 3,
                         "interval_s": 0.5}  # fmt: skip
    change = page(admin_client.get(f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/"))
    assert "item_id json $.data.id" in change
    assert 'id="validate-definition"' in change and 'id="try-once"' in change
    assert "loadtests/step_order.js" in change


def test_a_template_typo_is_a_form_error_at_save_and_nothing_is_stored(
    admin_client: Any, target_url: str
) -> None:
    response = admin_client.post(
        ADD, two_step_flow(target_url, **{"steps-1-path": "/echo?item={{ itemid }}"})
    )
    assert response.status_code == 200
    step_form = steps_formset(response).forms[1]
    message = " ".join(step_form.errors["path"])
    assert "unknown variable 'itemid' at character" in message
    assert "item_id" in message  # what is defined before this step
    assert not LoadTestDefinition.objects.exists() and not LoadTestStep.objects.exists()


def test_a_malformed_extraction_line_names_the_line(admin_client: Any, target_url: str) -> None:
    response = admin_client.post(ADD, two_step_flow(target_url, **{"steps-0-extract": "item_id"}))
    step_form = steps_formset(response).forms[0]
    assert "Line 1: write `variable from expression`" in " ".join(step_form.errors["extract"])
    assert not LoadTestDefinition.objects.exists()


def test_an_extraction_in_requests_mode_is_refused(admin_client: Any, target_url: str) -> None:
    response = admin_client.post(ADD, two_step_flow(target_url, mode="requests"))
    assert response.status_code == 200
    assert "need the flow mode" in page(response)
    assert not LoadTestDefinition.objects.exists()


def test_validate_lists_the_problems_by_step(
    admin_client: Any, flow_definition: LoadTestDefinition
) -> None:
    url = f"/admin/loadtests/loadtestdefinition/{flow_definition.pk}/validate/"
    ok = page(admin_client.post(url))
    assert 'id="validation-ok"' in ok
    # Stored behind the admin's back (an older row, a direct edit): Validate still finds it.
    flow_definition.steps.filter(name="echo").update(body="sku={{ row.colour }}")
    response = admin_client.post(url)
    assert response.status_code == 200
    (entry,) = response.context["report"]
    assert entry.step == "echo" and entry.where == "step 'echo'"
    assert "body:" in entry.messages[0] and "colour" in entry.messages[0]
    assert admin_client.get(url).status_code == 405


def test_validate_and_try_once_need_their_permissions(
    client: Client, django_user_model: Any, flow_definition: LoadTestDefinition
) -> None:
    base = f"/admin/loadtests/loadtestdefinition/{flow_definition.pk}"
    client.force_login(staff_with(django_user_model, "viewer", "view_loadtestdefinition"))
    assert client.post(f"{base}/validate/").status_code == 403
    assert client.post(f"{base}/try-once/").status_code == 403
    client.force_login(staff_with(django_user_model, "editor", "change_loadtestdefinition"))
    assert client.post(f"{base}/validate/").status_code == 200
    assert client.post(f"{base}/try-once/").status_code == 403


def test_try_once_shows_each_request_and_response_with_secrets_masked(
    client: Client, django_user_model: Any, flow_definition: LoadTestDefinition
) -> None:
    runner = staff_with(django_user_model, "runner", "view_loadtestdefinition", "add_loadtestrun")
    client.force_login(runner)
    url = f"/admin/loadtests/loadtestdefinition/{flow_definition.pk}/try-once/"
    response = client.post(url)
    assert response.status_code == 200
    read, echo = response.context["exchanges"]
    assert (read["step"], read["status"], read["extracted"]) == ("read", 200, {"item_id": "1"})
    assert echo["status"] == 200 and echo["url"].endswith("/echo?item=1")
    assert echo["request_body"] == "sku=A-1 user=1"
    assert echo["request_headers"]["Authorization"] == MASK
    assert '"sku=A-1 user=1"' in echo["body"]  # the target echoed what was sent
    shown = page(response)
    assert "flow-secret-token" not in shown and "item_id" in shown and MASK in shown


def test_try_once_refuses_a_target_off_the_allow_list(
    admin_client: Any, flow_definition: LoadTestDefinition, settings: Any
) -> None:
    settings.LOADTEST_ALLOWED_HOSTS = ["example.org"]
    url = f"/admin/loadtests/loadtestdefinition/{flow_definition.pk}/try-once/"
    response = admin_client.post(url)
    assert "not in LOADTEST_ALLOWED_HOSTS" in response.context["refused"]
    assert response.context.get("exchanges") is None


def test_a_new_step_counts_200_to_399_as_success_until_narrowed(admin_client: Any) -> None:
    response = admin_client.get(ADD)
    step_form = steps_formset(response).forms[0]
    assert step_form.initial["expected_statuses"] == ""
    existing = LoadTestDefinition.objects.create(
        name="kept", target_base_url="http://127.0.0.1:8001", duration_s=5, users=1
    )
    LoadTestStep.objects.create(definition=existing, name="ok", path="/ok", expected_statuses="200")
    change = admin_client.get(f"/admin/loadtests/loadtestdefinition/{existing.pk}/change/")
    stored = steps_formset(change).forms[0]
    assert stored.initial["expected_statuses"] == "200"  # a stored step keeps its codes
