"""Bad definitions are refused at save, in the admin's form, by the engine's own rules: never
a 500, never a refusal first seen at Run now, and never a limit the engine does not share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils.html import escape

from loadtests import documents, services
from loadtests.engine import EngineConfig, Stage
from loadtests.engine import config as engine_config
from loadtests.models import LoadTestDefinition, LoadTestStage, LoadTestStep
from loadtests.validators import HTTP_METHODS
from tests.engine.helpers import closed, step
from tests.loadtests.admin_forms import ADD
from tests.loadtests.admin_forms import admin_form as form_data

pytestmark = pytest.mark.django_db


def stages_data(*stages: tuple[Any, Any]) -> dict[str, str]:
    data = {"stages-TOTAL_FORMS": str(len(stages))}
    for index, (duration_s, target) in enumerate(stages):
        data[f"stages-{index}-order"] = str(index)
        data[f"stages-{index}-duration_s"] = str(duration_s)
        data[f"stages-{index}-target"] = str(target)
    return data


def headers_data(headers: dict[str, str]) -> dict[str, str]:
    return {"steps-0-headers": json.dumps(headers)}


def admin_errors(response: Any) -> dict[str, list[str]]:
    """Every error on the page, by where it shows: a definition field ("users"), an inline
    form's field ("steps-0-path") or an inline as a whole ("stages")."""
    found: dict[str, list[str]] = {}
    form = response.context["adminform"].form
    for name, errors in form.errors.items():
        found.setdefault(name, []).extend(errors)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        if formset.non_form_errors():
            found.setdefault(formset.prefix, []).extend(formset.non_form_errors())
        for form in formset.forms:
            for name, errors in form.errors.items():
                found.setdefault(f"{form.prefix}-{name}", []).extend(errors)
    return found


def refused(admin_client: Any, data: dict[str, Any]) -> dict[str, list[str]]:
    """Post the add form; assert that it was refused as a form error and saved nothing."""
    response = admin_client.post(ADD, data)
    assert response.status_code == 200, response.content.decode()[:2000]
    assert not LoadTestDefinition.objects.exists()
    errors = admin_errors(response)
    assert errors
    for texts in errors.values():
        for text in texts:
            assert escape(text) in response.content.decode()
    return errors


def saved(admin_client: Any, data: dict[str, Any]) -> LoadTestDefinition:
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, admin_errors(response)
    return LoadTestDefinition.objects.get()


# -- finding 9, one bullet at a time --------------------------------------------------------


def test_it_refuses_a_nul_in_a_header_value_as_a_form_error(
    admin_client: Any, target_url: str
) -> None:
    errors = refused(admin_client, form_data(target_url, **headers_data({"X-Token": "a\0b"})))
    assert "X-Token: Text may not contain NUL characters" in " ".join(errors["steps-0-headers"])


def test_it_refuses_a_closed_stage_target_above_the_users_cap(
    admin_client: Any, target_url: str
) -> None:
    data = form_data(target_url, **stages_data((5, 100), (5, 90_000)))
    errors = refused(admin_client, data)
    assert errors == {"stages-1-target": ["A stage's target must be 0 to 10000 users."]}


def test_it_refuses_an_open_stage_target_above_the_rate_cap(
    admin_client: Any, target_url: str
) -> None:
    data = form_data(target_url, load_model="open", rate_rps="10", **stages_data((10, 2_000_000)))
    errors = refused(admin_client, data)
    assert errors == {"stages-0-target": ["A stage's target must be 0 to 1000000 requests/s."]}


def test_it_refuses_a_header_value_that_is_not_latin_1(admin_client: Any, target_url: str) -> None:
    data = form_data(target_url, **headers_data({"X-Name": "Zoë ✓"}))
    errors = refused(admin_client, data)
    assert "Latin-1" in " ".join(errors["steps-0-headers"])


@pytest.mark.parametrize(
    ("overrides", "where", "text"),
    [
        (headers_data({"X\tName": "1"}), "steps-0-headers", "not a valid header name"),
        (headers_data({"X(Name)": "1"}), "steps-0-headers", "not a valid header name"),
        ({"steps-0-path": "/café"}, "steps-0-path", "printable ASCII"),
        ({"steps-0-path": "/a\x01b"}, "steps-0-path", "printable ASCII"),
        ({"steps-0-path": "/a\x7fb"}, "steps-0-path", "printable ASCII"),
        ({"target_base_url": "http://127.0.0.1:0"}, "target_base_url", "port"),
        ({"target_base_url": "http://127.0.0.1:99999"}, "target_base_url", "port"),
        # Shown beside the first stage's target (loadtests/admin.py).
        (stages_data((4, 0), (6, 0)), "stages-0-target", "needs a target above 0"),
    ],
    ids=[
        "header-name-tab", "header-name-paren", "non-ascii-path", "control-in-path",
        "delete-in-path", "port-0", "port-99999", "all-zero-stages",
    ],
)  # fmt: skip
def test_it_refuses_what_run_now_used_to_refuse_or_send_as_typed(
    admin_client: Any, target_url: str, overrides: dict[str, str], where: str, text: str
) -> None:
    errors = refused(admin_client, form_data(target_url, **overrides))
    assert text in " ".join(errors[where]), errors


def test_it_checks_a_changed_definition_with_its_stored_steps_and_stages(
    admin_client: Any, target_url: str
) -> None:
    definition = saved(admin_client, form_data(target_url, **stages_data((10, 9_000))))
    stage = definition.stages.get()
    step_row = definition.steps.get()
    data = form_data(
        target_url,
        users="5",
        **{
            "steps-INITIAL_FORMS": "1", "steps-0-id": str(step_row.pk),
            "steps-0-definition": str(definition.pk),
            "stages-INITIAL_FORMS": "1", "stages-0-id": str(stage.pk),
            "stages-0-definition": str(definition.pk),
            **stages_data((10, 9_000)),
            "load_model": "open",
            "rate_rps": "50",
            "stages-0-target": "2000000",
        },
    )  # fmt: skip
    url = f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "stages-0-target" in admin_errors(response)
    definition.refresh_from_db()
    assert definition.load_model == "closed"


def test_it_saves_what_a_run_accepts_and_the_run_starts(admin_client: Any, target_url: str) -> None:
    data = form_data(
        target_url,
        users=str(engine_config.MAX_USERS),
        duration_s=str(engine_config.MAX_DURATION_S),
        timeout_s=str(engine_config.MAX_TIMEOUT_S),
        **{"steps-0-path": "/a%20b?q=%C3%A9", **headers_data({"X-Name": "Zoë\tx"})},
        **stages_data((engine_config.MAX_DURATION_S, engine_config.MAX_USERS)),
    )
    definition = saved(admin_client, data)
    run = services.create_run(definition)
    assert run.config["steps"][0]["path"] == "/a%20b?q=%C3%A9"


# -- one validator: the engine, the admin, the run and the CLI agree ------------------------


@dataclass(frozen=True)
class Case:
    """One definition, as typed into the admin and as the engine receives it."""

    form: dict[str, Any]
    engine: dict[str, Any] = field(default_factory=dict)
    step: dict[str, Any] = field(default_factory=dict)
    bad: bool = True


def engine_config_of(case: Case, base_url: str) -> EngineConfig:
    config = closed(base_url, step("/ok", name="home"), users=5, duration_s=10, timeout_s=5)
    config = replace(config, **{"max_connections": 20, **case.engine})
    return replace(config, steps=(replace(config.steps[0], **case.step),))


MAX_USERS = engine_config.MAX_USERS
MAX_RATE = engine_config.MAX_RATE
CASES = {
    "nul-in-header": Case(headers_data({"X-T": "a\0b"}), step={"headers": {"X-T": "a\0b"}}),
    "lf-in-header": Case(headers_data({"X-T": "a\nb"}), step={"headers": {"X-T": "a\nb"}}),
    "emoji-in-header": Case(headers_data({"X-T": "✓"}), step={"headers": {"X-T": "✓"}}),
    "tab-in-header-name": Case(headers_data({"X\tT": "1"}), step={"headers": {"X\tT": "1"}}),
    "paren-in-header-name": Case(headers_data({"X(T": "1"}), step={"headers": {"X(T": "1"}}),
    "newline-after-header-name": Case(
        headers_data({"X-T\n": "1"}), step={"headers": {"X-T\n": "1"}}
    ),
    "host-header": Case(headers_data({"Host": "x"}), step={"headers": {"Host": "x"}}),
    "space-in-path": Case({"steps-0-path": "/a b"}, step={"path": "/a b"}),
    "non-ascii-path": Case({"steps-0-path": "/café"}, step={"path": "/café"}),
    "control-in-path": Case({"steps-0-path": "/a\x01"}, step={"path": "/a\x01"}),
    "relative-path": Case({"steps-0-path": "ok"}, step={"path": "ok"}),
    "weight-above-cap": Case({"steps-0-weight": "1001"}, step={"weight": 1001}),
    "port-0": Case(
        {"target_base_url": "http://127.0.0.1:0"}, {"target_base_url": "http://127.0.0.1:0"}
    ),
    "port-99999": Case(
        {"target_base_url": "http://127.0.0.1:99999"}, {"target_base_url": "http://127.0.0.1:99999"}
    ),
    "users-above-cap": Case({"users": str(MAX_USERS + 1)}, {"users": MAX_USERS + 1}),
    "rate-above-cap": Case(
        {"load_model": "open", "rate_rps": str(MAX_RATE * 2)},
        {"load_model": "open", "rate_rps": MAX_RATE * 2, "users": 0},
    ),
    "duration-above-cap": Case(
        {"duration_s": str(engine_config.MAX_DURATION_S + 1)},
        {"duration_s": engine_config.MAX_DURATION_S + 1},
    ),
    "timeout-above-cap": Case({"timeout_s": "601"}, {"timeout_s": 601.0}),
    "connections-above-cap": Case({"max_connections": "10001"}, {"max_connections": 10_001}),
    "closed-stage-above-cap": Case(
        stages_data((10, MAX_USERS + 1)), {"stages": (Stage(10, MAX_USERS + 1),)}
    ),
    "open-stage-above-cap": Case(
        {"load_model": "open", "rate_rps": "10", **stages_data((10, MAX_RATE * 2))},
        {"load_model": "open", "rate_rps": 10.0, "users": 0, "stages": (Stage(10, MAX_RATE * 2),)},
    ),
    "all-zero-stages": Case(stages_data((10, 0)), {"stages": (Stage(10, 0),)}),
    # The admin sets the duration from the stages, so a typed duration cannot disagree.
    "stages-set-the-duration": Case(
        stages_data((3, 5)), {"stages": (Stage(3, 5),), "duration_s": 3}, bad=False
    ),
    # and what both accept, at the limits
    "users-at-cap": Case({"users": str(MAX_USERS)}, {"users": MAX_USERS}, bad=False),
    "rate-at-cap": Case(
        {"load_model": "open", "rate_rps": str(MAX_RATE)},
        {"load_model": "open", "rate_rps": MAX_RATE, "users": 0},
        bad=False,
    ),
    "stage-at-cap": Case(
        stages_data((10, MAX_USERS)), {"stages": (Stage(10, MAX_USERS),)}, bad=False
    ),
    "timeout-at-cap": Case({"timeout_s": "600"}, {"timeout_s": 600.0}, bad=False),
    "latin-1-header": Case(
        headers_data({"X-T": "Zoë\t!"}), step={"headers": {"X-T": "Zoë\t!"}}, bad=False
    ),
    "percent-encoded-path": Case(
        {"steps-0-path": "/a%20b?c=%00"}, step={"path": "/a%20b?c=%00"}, bad=False
    ),
    "port-65535": Case(
        {"target_base_url": "http://127.0.0.1:65535"},
        {"target_base_url": "http://127.0.0.1:65535"},
        bad=False,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_it_refuses_in_the_admin_exactly_what_the_engine_refuses(
    admin_client: Any, target_url: str, case: Case
) -> None:
    engine_problems = engine_config_of(case, target_url).validate()
    response = admin_client.post(ADD, form_data(target_url, **case.form))
    admin_refused = response.status_code == 200
    assert bool(engine_problems) == admin_refused == case.bad, (
        engine_problems,
        admin_errors(response) if admin_refused else "saved",
    )
    if not case.bad:
        # What the admin saved, a run accepts: nothing is first refused at Run now.
        assert services.create_run(LoadTestDefinition.objects.get())


def test_it_names_the_fields_of_a_refused_run_in_the_users_terms(definition: Any) -> None:
    definition.load_model = "open"
    definition.rate_rps = 0
    definition.save()
    LoadTestStage.objects.create(definition=definition, duration_s=1, target=2)
    LoadTestStep.objects.filter(name="ok").update(path="/a b", expected_statuses="200")
    problems = documents.config_problems(documents.freeze_definition(definition))
    assert {"stages", "steps[0].path"} <= set(problems), problems
    assert not {"rate", "base_url", "steps[0].expect_status"} & set(problems)
    definition.stages.all().delete()
    problems = documents.config_problems(documents.freeze_definition(definition))
    assert "rate_rps" in problems and "rate" not in problems


def test_it_refuses_an_ad_hoc_cli_run_above_the_users_cap(target_url: str) -> None:
    err = StringIO()
    args = ["url", f"{target_url}/ok", "--users", str(MAX_USERS + 1), "--duration", "1"]
    with pytest.raises(Exception) as caught:
        call_command("loadtest", *args, stdout=StringIO(), stderr=err)
    assert getattr(caught.value, "returncode", None) == 2
    assert f"--users {MAX_USERS + 1}: The closed model needs 1 to {MAX_USERS} users." in str(
        caught.value
    )


def test_it_offers_the_engines_methods_and_limits() -> None:
    assert set(HTTP_METHODS) == set(engine_config.METHODS)
    definition = LoadTestDefinition._meta
    limits = {
        "users": engine_config.MAX_USERS,
        "rate_rps": engine_config.MAX_RATE,
        "duration_s": engine_config.MAX_DURATION_S,
        "timeout_s": engine_config.MAX_TIMEOUT_S,
        "max_connections": engine_config.MAX_CONNECTIONS,
    }
    for name, limit in limits.items():
        maxima = [
            v.limit_value for v in definition.get_field(name).validators if v.code == "max_value"
        ]
        assert maxima == [limit], name
