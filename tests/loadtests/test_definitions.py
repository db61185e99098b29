from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from loadtests import services
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStage, LoadTestStep
from tests.loadtests.admin_forms import admin_form

pytestmark = pytest.mark.django_db


def test_it_creates_a_definition_with_steps_and_stages_in_the_admin(
    admin_client: Any, target_url: str
) -> None:
    data = admin_form(
        target_url,
        **{
            "stages-TOTAL_FORMS": "2",
            "stages-0-order": "0",
            "stages-0-duration_s": "4",
            "stages-0-target": "5",
            "stages-1-order": "1",
            "stages-1-duration_s": "6",
            "stages-1-target": "5",
        },  # fmt: skip
    )
    response = admin_client.post("/admin/loadtests/loadtestdefinition/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    definition = LoadTestDefinition.objects.get(name="checkout")
    assert definition.steps.count() == 1
    assert [s.duration_s for s in definition.stages.all()] == [4, 6]
    assert definition.verify_tls is True


@pytest.mark.parametrize(
    ("overrides", "field_text"),
    [
        ({"target_base_url": "http://example.com"}, "not in LOADTEST_ALLOWED_HOSTS"),
        ({"load_model": "open", "rate_rps": "0"}, "needs an arrival rate above 0"),
        ({"rate_rps": "-5"}, "needs a rate above 0, at most"),
        ({"steps-0-method": "BREW"}, "BREW is not one of the available choices"),
        ({"steps-0-path": "no-slash"}, "must start with"),
        ({"steps-0-expected_statuses": "200,abc"}, "is not an HTTP status code"),
        ({"think_time_min_s": "2", "think_time_max_s": "1"}, "at least the think time min"),
        (  # a stage sum cannot disagree with the duration: the admin sets it from the stages
            {"stages-TOTAL_FORMS": "1", "stages-0-order": "0", "stages-0-duration_s": "3",
             "stages-0-target": "0"},
            "At least one stage needs a target above 0.",
        ),
        ({"steps-TOTAL_FORMS": "0"}, "Add at least one step."),
    ],
)  # fmt: skip
def test_it_refuses_bad_definitions_naming_the_rule(
    admin_client: Any, target_url: str, overrides: dict[str, str], field_text: str
) -> None:
    response = admin_client.post(
        "/admin/loadtests/loadtestdefinition/add/", admin_form(target_url, **overrides)
    )
    assert response.status_code == 200
    assert field_text in response.content.decode()
    assert not LoadTestDefinition.objects.exists()


def test_a_run_aimed_outside_the_allow_list_is_refused(definition: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED_HOSTS = ["localhost"]
    with pytest.raises(ValidationError) as caught:
        services.create_run(definition)
    assert "LOADTEST_ALLOWED_HOSTS" in str(caught.value)
    assert not LoadTestRun.objects.exists()


def test_a_run_freezes_the_definition(definition: Any) -> None:
    run = services.create_run(definition)
    definition.users = 99
    definition.save()
    LoadTestStep.objects.filter(definition=definition).update(path="/changed")
    run.refresh_from_db()
    assert run.config["users"] == 4
    assert {s["path"] for s in run.config["steps"]} == {"/ok", "/json"}
    assert run.status == "queued"


def test_stages_must_add_up_to_the_duration(definition: Any) -> None:
    LoadTestStage.objects.create(definition=definition, duration_s=1, target=2)
    with pytest.raises(ValidationError) as caught:
        services.create_run(definition)
    assert "stages" in caught.value.message_dict
