"""The definition admin's actions: Run now and Save as new, with their permissions, and a run
changelist of few short columns."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from loadtests.models import LoadTestDefinition, LoadTestRun
from tests.loadtests.admin_forms import ADD, admin_form

pytestmark = pytest.mark.django_db


def change_url(definition: LoadTestDefinition) -> str:
    return f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/"


def stages(*durations_and_targets: tuple[int, int]) -> dict[str, str]:
    data = {"stages-TOTAL_FORMS": str(len(durations_and_targets))}
    for index, (duration, target) in enumerate(durations_and_targets):
        data[f"stages-{index}-order"] = str(index)
        data[f"stages-{index}-duration_s"] = str(duration)
        data[f"stages-{index}-target"] = str(target)
    return data


# -- buttons and permissions --------------------------------------------------------------------


def test_the_change_form_offers_run_now_and_save_as_new(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    html = admin_client.get(change_url(definition)).content.decode()
    assert 'id="run-now"' in html
    assert f"/admin/loadtests/loadtestdefinition/{definition.pk}/run-now/" in html
    assert 'name="_saveasnew"' in html


def test_run_now_queues_a_run_and_opens_its_page(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    response = admin_client.post(f"/admin/loadtests/loadtestdefinition/{definition.pk}/run-now/")
    run = LoadTestRun.objects.get(definition=definition)
    assert response.status_code == 302
    assert response["Location"] == reverse("loadtests:run", args=[run.pk])
    assert run.trigger == "manual"


def test_run_now_needs_a_post(admin_client: Any, definition: LoadTestDefinition) -> None:
    url = f"/admin/loadtests/loadtestdefinition/{definition.pk}/run-now/"
    assert admin_client.get(url).status_code == 405
    assert not LoadTestRun.objects.exists()


def test_run_now_needs_the_run_permission(
    client: Any, django_user_model: Any, definition: LoadTestDefinition
) -> None:
    editor = django_user_model.objects.create_user(
        "editor", "e@example.com", "pw-editor-123", is_staff=True
    )
    editor.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_loadtestdefinition", "change_loadtestdefinition"]
        )
    )
    client.force_login(editor)
    html = client.get(change_url(definition)).content.decode()
    assert 'id="run-now"' not in html
    response = client.post(f"/admin/loadtests/loadtestdefinition/{definition.pk}/run-now/")
    assert response.status_code == 403
    assert not LoadTestRun.objects.exists()


def test_save_as_new_copies_the_definition_with_its_steps(
    admin_client: Any, target_url: str
) -> None:
    admin_client.post(ADD, admin_form(target_url))
    original = LoadTestDefinition.objects.get(name="checkout")
    step = original.steps.get()
    data = admin_form(
        target_url,
        name="checkout copy",
        _saveasnew="Save as new",
        **{
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(step.pk),
            "steps-0-definition": str(original.pk),
        },
    )
    response = admin_client.post(change_url(original), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    copy = LoadTestDefinition.objects.get(name="checkout copy")
    assert copy.pk != original.pk
    assert [s.path for s in copy.steps.all()] == ["/ok"]
    assert original.steps.count() == 1


# -- the run changelist --------------------------------------------------------------------------


def test_the_run_changelist_has_few_short_columns(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    from loadtests import services

    run = services.create_run(definition)
    html = admin_client.get("/admin/loadtests/loadtestrun/").content.decode()
    columns = re.findall(r'<th scope="col"[^>]*class="[^"]*column-(\w+)', html)
    assert columns == [
        "page_link",
        "short_name",
        "status",
        "trigger",
        "created",
        "p95",
        "errors_pct",
    ]
    assert f">#{run.pk}</a>" in html
