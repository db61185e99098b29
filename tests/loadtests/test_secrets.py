"""Secret step headers: only the engine sees their values; every page, export, JSON document,
form and log line shows the mask instead."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from loadtests import lifecycle, services
from loadtests.models import LoadTestDefinition, LoadTestRun, LoadTestStep
from loadtests.secrets import MASK, masked_config, masked_headers, redact, secret_values
from tests.loadtests.admin_forms import admin_form
from tests.loadtests.test_runs import run_cli

pytestmark = pytest.mark.django_db

TOKEN = "Bearer tok-4f9a-very-secret"
API_KEY = "key-77c1-also-secret"
SESSION = "sessionid=abc123-secret-cookie"


@pytest.fixture
def secret_definition(target_url: str) -> LoadTestDefinition:
    """A definition whose step sends an Authorization header, a cookie and a custom secret to
    a target path that answers 200 only when it received the real Authorization value."""
    definition = LoadTestDefinition.objects.create(
        name="with secrets",
        target_base_url=target_url,
        load_model="closed",
        users=2,
        duration_s=1,
        timeout_s=2,
        abort_error_rate_pct=None,
    )
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    LoadTestStep.objects.create(
        definition=definition,
        name="authorised",
        path=f"/expect-header?name=authorization&sha256={digest}",
        headers={
            "Authorization": TOKEN,
            "cookie": SESSION,
            "X-Api-Key": API_KEY,
            "Accept": "application/json",
        },
        secret_headers=["x-api-key"],
    )
    return definition


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, TOKEN.split(" ", 1)[1], API_KEY, SESSION):
        assert secret not in text


# -- the masking functions -------------------------------------------------------------------


def test_it_masks_the_always_secret_headers_whatever_their_case() -> None:
    headers = {"AUTHORIZATION": "a-1", "Cookie": "b-2", "proxy-authorization": "c-3", "X": "d"}
    assert masked_headers(headers) == {
        "AUTHORIZATION": MASK,
        "Cookie": MASK,
        "proxy-authorization": MASK,
        "X": "d",
    }
    assert headers["AUTHORIZATION"] == "a-1"  # the given mapping is left alone


def test_it_masks_the_headers_a_step_names_secret() -> None:
    headers = {"X-Api-Key": "k", "X-Trace": "t"}
    assert masked_headers(headers, ["x-api-key"]) == {"X-Api-Key": MASK, "X-Trace": "t"}


def test_it_masks_a_frozen_config_without_touching_the_stored_one() -> None:
    config = {
        "name": "n",
        "steps": [
            {
                "name": "s",
                "path": "/p",
                "headers": {"Authorization": TOKEN, "X-Api-Key": API_KEY},
                "secret_headers": ["X-API-KEY"],
                "check_value": TOKEN,
            }
        ],
    }
    shown = masked_config(config)
    step = shown["steps"][0]
    assert step["headers"] == {"Authorization": MASK, "X-Api-Key": MASK}
    assert step["check_value"] == MASK  # the secret is masked wherever it is repeated
    assert config["steps"][0]["headers"]["Authorization"] == TOKEN
    assert masked_config({"load_model": "closed"}) == {"load_model": "closed"}


def test_it_redacts_a_secret_repeated_in_free_text() -> None:
    config = {"steps": [{"headers": {"Authorization": TOKEN}}]}
    values = secret_values(config)
    sample = f'JSON field headers.authorization is "{TOKEN}", expected "x"'
    assert redact(sample, values) == f'JSON field headers.authorization is "{MASK}", expected "x"'
    # the credential alone (without its scheme) is a secret too
    assert redact(f"token {TOKEN.split(' ', 1)[1]} refused", values) == f"token {MASK} refused"


# -- what a run shows and what it sends ------------------------------------------------------


def test_a_viewer_sees_only_masks_in_the_summary_json(
    viewer_client: Any, secret_definition: LoadTestDefinition
) -> None:
    run = services.create_run(secret_definition)
    response = viewer_client.get(f"/runs/{run.pk}/summary.json")
    assert response.status_code == 200
    body = response.content.decode()
    assert_no_secret(body)
    headers = json.loads(body)["config"]["steps"][0]["headers"]
    assert headers == {
        "Authorization": MASK,
        "cookie": MASK,
        "X-Api-Key": MASK,
        "Accept": "application/json",
    }


def test_it_sends_the_real_header_and_shows_only_the_mask(
    viewer_client: Any, secret_definition: LoadTestDefinition, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    baseline = lifecycle.execute(services.create_run(secret_definition).pk)
    run = lifecycle.execute(services.create_run(secret_definition).pk)
    # The target answers 200 only when the Authorization value it received is the real one.
    assert run.status == "passed", run.status_reason
    assert run.requests > 0 and run.errors == 0
    assert run.config["steps"][0]["headers"]["Authorization"] == TOKEN  # stored for the engine

    summary = viewer_client.get(f"/runs/{run.pk}/summary.json").content.decode()
    assert_no_secret(summary)
    assert json.loads(summary)["config"]["steps"][0]["headers"]["Authorization"] == MASK
    for url in (
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/live/",
        f"/runs/{run.pk}/intervals.csv",
        f"/runs/{run.pk}/latency.hlog",
        f"/definitions/{secret_definition.pk}/",
        f"/runs/compare/?a={baseline.pk}&b={run.pk}",
        "/",
    ):
        response = viewer_client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response.content.decode())
    assert_no_secret("\n".join(record.getMessage() for record in caplog.records))


def test_a_secret_echoed_into_an_error_sample_is_masked(
    viewer_client: Any, secret_definition: LoadTestDefinition
) -> None:
    # /echo answers with the headers it received; the check quotes the field it compared.
    LoadTestStep.objects.filter(definition=secret_definition).update(
        path="/echo", check_type="json_equals", check_path="headers.authorization",
        check_value='"nope"',
    )  # fmt: skip
    run = lifecycle.execute(services.create_run(secret_definition).pk)
    sample = run.errors_by_class["check_failed"]["sample"]
    assert MASK in sample
    assert_no_secret(json.dumps(run.errors_by_class))
    assert_no_secret(viewer_client.get(f"/runs/{run.pk}/").content.decode())
    assert_no_secret(viewer_client.get(f"/runs/{run.pk}/summary.json").content.decode())


def test_the_cli_shows_only_masks(secret_definition: LoadTestDefinition) -> None:
    for extra in ((), ("--json",)):
        code, out, err = run_cli("run", "with secrets", "--local", *extra)
        assert code == 0, err
        assert_no_secret(out + err)


def test_the_frozen_config_lists_the_steps_secret_header_names(
    secret_definition: LoadTestDefinition,
) -> None:
    run = services.create_run(secret_definition)
    assert run.config["steps"][0]["secret_headers"] == ["x-api-key"]


# -- the admin -------------------------------------------------------------------------------


def step_form(step: LoadTestStep, **overrides: str) -> dict[str, Any]:
    definition = step.definition
    data = admin_form(
        definition.target_base_url,
        **{
            "name": definition.name,
            "users": str(definition.users),
            "duration_s": str(definition.duration_s),
            "timeout_s": str(definition.timeout_s),
            "abort_error_rate_pct": "",
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(step.pk),
            "steps-0-definition": str(definition.pk),
            "steps-0-name": step.name,
            "steps-0-path": step.path,
            "steps-0-check_type": step.check_type,
            "steps-0-check_path": step.check_path,
            "steps-0-check_value": step.check_value,
            "steps-0-secret_headers": json.dumps(step.secret_headers),
        },
    )
    data.update(overrides)
    return data


def shown_headers(html: str) -> dict[str, str]:
    # The headers are name/value rows (loadtests.admin.HeaderRowsWidget); the blank last row
    # is for a new header.
    import html as html_lib

    names = re.findall(r'name="steps-0-headers__name" value="([^"]*)"', html)
    values = re.findall(r'name="steps-0-headers__value" value="([^"]*)"', html)
    assert names, "the step's headers field is on the page"
    pairs = zip(names, values, strict=True)
    return {html_lib.unescape(n): html_lib.unescape(v) for n, v in pairs if n}


def test_the_admin_step_form_never_shows_a_secret_back(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    url = f"/admin/loadtests/loadtestdefinition/{secret_definition.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert_no_secret(html)
    assert shown_headers(html) == {
        "Authorization": MASK,
        "cookie": MASK,
        "X-Api-Key": MASK,
        "Accept": "application/json",
    }


def test_saving_the_masked_form_keeps_the_stored_secrets(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    step = secret_definition.steps.get()
    url = f"/admin/loadtests/loadtestdefinition/{secret_definition.pk}/change/"
    shown = shown_headers(admin_client.get(url).content.decode())
    data = step_form(step, **{"steps-0-path": "/echo?v=2", "steps-0-headers": json.dumps(shown)})
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    step.refresh_from_db()
    assert step.path == "/echo?v=2"
    assert step.headers == {
        "Authorization": TOKEN,
        "cookie": SESSION,
        "X-Api-Key": API_KEY,
        "Accept": "application/json",
    }


def test_a_new_value_typed_over_the_mask_replaces_the_secret(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    step = secret_definition.steps.get()
    url = f"/admin/loadtests/loadtestdefinition/{secret_definition.pk}/change/"
    headers = {"authorization": "Bearer rotated", "cookie": MASK, "Accept": "text/plain"}
    data = step_form(
        step, **{"steps-0-headers": json.dumps(headers), "steps-0-secret_headers": "[]"}
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    step.refresh_from_db()
    # X-Api-Key was removed from the form, so it is gone; the cookie kept its stored value.
    assert step.headers == {
        "authorization": "Bearer rotated",
        "cookie": SESSION,
        "Accept": "text/plain",
    }


def test_the_mask_for_a_header_with_no_stored_value_is_refused(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    step = secret_definition.steps.get()
    url = f"/admin/loadtests/loadtestdefinition/{secret_definition.pk}/change/"
    headers = {"Proxy-Authorization": MASK}
    response = admin_client.post(url, step_form(step, **{"steps-0-headers": json.dumps(headers)}))
    assert response.status_code == 200
    assert "Proxy-Authorization: type its value" in response.content.decode()
    step.refresh_from_db()
    assert step.headers["Authorization"] == TOKEN


def test_the_admin_run_page_masks_the_frozen_config(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    run = services.create_run(secret_definition)
    html = admin_client.get(f"/admin/loadtests/loadtestrun/{run.pk}/change/").content.decode()
    assert "Configuration" in html and MASK in html
    assert_no_secret(html)


def test_secret_header_names_must_name_a_header_of_the_step(
    secret_definition: LoadTestDefinition,
) -> None:
    step = secret_definition.steps.get()
    step.secret_headers = ["X-Api-Token"]
    with pytest.raises(ValidationError) as caught:
        step.full_clean()
    assert "secret_headers" in caught.value.message_dict
    assert "'X-Api-Token' is not one of this step's headers" in str(caught.value)
    step.secret_headers = "X-Api-Key"
    with pytest.raises(ValidationError, match="list of header names"):
        step.full_clean()
    step.secret_headers = ["X-API-KEY", "authorization"]
    step.full_clean()


def test_the_admin_saves_secret_header_names(
    admin_client: Any, secret_definition: LoadTestDefinition
) -> None:
    step = secret_definition.steps.get()
    url = f"/admin/loadtests/loadtestdefinition/{secret_definition.pk}/change/"
    headers = {"X-Trace": "t-1", "X-Api-Key": MASK}
    data = step_form(
        step,
        **{
            "steps-0-headers": json.dumps(headers),
            "steps-0-secret_headers": '["X-Trace", "X-Api-Key"]',
        },
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    step.refresh_from_db()
    assert step.secret_headers == ["X-Trace", "X-Api-Key"]
    assert step.headers == {"X-Trace": "t-1", "X-Api-Key": API_KEY}
    assert "t-1" not in admin_client.get(url).content.decode()


def test_run_lists_never_carry_the_config(
    viewer_client: Any, secret_definition: LoadTestDefinition
) -> None:
    run = services.create_run(secret_definition)
    assert LoadTestRun.objects.filter(pk=run.pk).exists()
    assert_no_secret(viewer_client.get("/runs/running.json").content.decode())
