"""The HTTP API: token auth, the dashboard's permissions, trigger `api`, overrides checked by
the engine's rules, the run JSON the CLI prints, cancel, and definitions as documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from loadtests import tokens
from loadtests.models import ApiToken, LoadTestDefinition, LoadTestRun, LoadTestStep, RunStatus

pytestmark = pytest.mark.django_db


def token_for(user: Any, name: str = "ci") -> str:
    api_token = ApiToken(user=user, name=name)
    token = api_token.set_new_token()
    api_token.save()
    return token


def grant(user: Any, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


@pytest.fixture
def runner(django_user_model: Any) -> Any:
    """A user who may see runs and definitions, run and cancel, as on the dashboard."""
    user = django_user_model.objects.create_user("runner", "runner@example.com", "pw-runner-123")
    grant(
        user,
        "view_loadtestrun",
        "view_loadtestdefinition",
        "add_loadtestrun",
        "change_loadtestrun",
    )
    return user


def api(
    method: str, path: str, token: str | None = None, body: Any = None, client: Client | None = None
) -> tuple[int, dict[str, Any]]:
    client = client or Client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body) if body is not None else None
    call = getattr(client, method.lower())
    if data is None:
        response = call(path, headers=headers)
    else:
        response = call(path, data=data, content_type="application/json", headers=headers)
    return response.status_code, response.json()


def test_it_starts_a_run_with_trigger_api_and_answers_201_with_its_json(
    runner: Any, definition: LoadTestDefinition
) -> None:
    status, body = api("POST", "/api/v1/runs/", token_for(runner), {"definition": "smoke"})
    assert status == 201, body
    run = LoadTestRun.objects.get(pk=body["id"])
    assert (run.trigger, run.started_by, run.status) == ("api", runner, RunStatus.QUEUED)
    assert body["url"] == f"http://testserver/runs/{run.pk}/"
    assert body["status"] == "queued" and body["waiting"]["message"].startswith("Waiting")


def test_a_definition_is_found_by_id_and_overrides_reach_the_frozen_config(
    runner: Any, definition: LoadTestDefinition
) -> None:
    body = {"definition": definition.pk, "duration_s": 7, "users": 3}
    status, answer = api("POST", "/api/v1/runs/", token_for(runner), body)
    assert status == 201, answer
    run = LoadTestRun.objects.get(pk=answer["id"])
    assert (run.config["duration_s"], run.config["users"], run.planned_duration_s) == (7, 3, 7)
    definition.refresh_from_db()
    assert (definition.duration_s, definition.users) == (2, 4)  # the definition is unchanged


BAD_STARTS = [
    ({}, "definition", "Give a definition's name or id."),
    ({"definition": "nope"}, "definition", "There is no definition named or numbered 'nope'."),
    ({"definition": "smoke", "users": "many"}, "users", "Give a number."),
    ({"definition": "smoke", "duration_s": 1.5}, "duration_s", "Give a whole number."),
    ({"definition": "smoke", "rate_rps": 5}, "rate_rps", "uses the closed model"),
    ({"definition": "smoke", "colour": 1}, "colour", "Unknown field"),
    # The engine's own limits, named in the document's terms.
    ({"definition": "smoke", "users": 10_001}, "users", "10000"),
    ({"definition": "smoke", "duration_s": 0}, "duration_s", ""),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_STARTS)
def test_a_bad_start_is_a_400_naming_each_bad_field(
    runner: Any, definition: LoadTestDefinition, body: dict[str, Any], field: str, message: str
) -> None:
    status, answer = api("POST", "/api/v1/runs/", token_for(runner), body)
    assert status == 400, answer
    assert field in answer["errors"], answer
    assert message in " ".join(answer["errors"][field])
    assert not LoadTestRun.objects.exists()


def test_it_refuses_a_missing_a_bad_or_a_revoked_token_with_401(
    runner: Any, definition: LoadTestDefinition
) -> None:
    token = token_for(runner)
    assert api("POST", "/api/v1/runs/", None, {"definition": "smoke"})[0] == 401
    assert api("GET", "/api/v1/runs/1/", token[:-1] + "x")[0] == 401
    assert api("GET", "/api/v1/runs/1/", "not-a-token")[0] == 401
    ApiToken.objects.update(revoked=True)
    status, answer = api("POST", "/api/v1/runs/", token, {"definition": "smoke"})
    assert status == 401 and "not valid" in answer["error"]
    runner.is_active = False
    runner.save()
    ApiToken.objects.update(revoked=False)
    assert api("POST", "/api/v1/runs/", token, {"definition": "smoke"})[0] == 401
    assert not LoadTestRun.objects.exists()


def test_the_token_is_stored_hashed_and_its_use_recorded(runner: Any) -> None:
    token = token_for(runner)
    stored = ApiToken.objects.get()
    assert token not in (stored.token_hash, stored.prefix) and token.startswith(stored.prefix)
    assert stored.token_hash == tokens.digest_of(token)
    assert stored.last_used_at is None
    api("GET", "/api/v1/runs/1/", token)
    stored.refresh_from_db()
    assert stored.last_used_at is not None and stored.last_used_at <= timezone.now()


def test_it_needs_the_dashboards_permissions(viewer: Any, definition: LoadTestDefinition) -> None:
    token = token_for(viewer)
    status, answer = api("POST", "/api/v1/runs/", token, {"definition": "smoke"})
    assert status == 403 and "loadtests.add_loadtestrun" in answer["error"]
    run = LoadTestRun.objects.create(name="r", config={}, status=RunStatus.RUNNING)
    assert api("GET", f"/api/v1/runs/{run.pk}/", token)[0] == 200  # reading needs a login only
    status, answer = api("POST", f"/api/v1/runs/{run.pk}/cancel/", token)
    assert status == 403 and "loadtests.change_loadtestrun" in answer["error"]
    run.refresh_from_db()
    assert not run.cancel_requested
    status, _ = api("PUT", "/api/v1/definitions/smoke/", token, {"name": "smoke"})
    assert status == 403


def test_a_run_reads_as_the_cli_json_with_secrets_masked(
    runner: Any, definition: LoadTestDefinition
) -> None:
    config = {"steps": [{"headers": {"Authorization": "Bearer sekrit-value"}}]}
    run = LoadTestRun.objects.create(
        name="r",
        config=config,
        status=RunStatus.ERROR,
        status_reason="the target said: Bearer sekrit-value is wrong",
    )
    status, body = api("GET", f"/api/v1/runs/{run.pk}/", token_for(runner))
    assert status == 200
    assert "sekrit-value" not in json.dumps(body)
    for key in ("thresholds", "steps", "health", "url", "latency_ms", "status_reason"):
        assert key in body
    assert api("GET", "/api/v1/runs/999999/", token_for(runner, "other"))[0] == 404


def test_cancel_asks_a_running_run_to_stop_and_refuses_an_ended_one(runner: Any) -> None:
    token = token_for(runner)
    run = LoadTestRun.objects.create(name="r", config={}, status=RunStatus.RUNNING)
    status, body = api("POST", f"/api/v1/runs/{run.pk}/cancel/", token)
    assert status == 200 and body["id"] == run.pk
    run.refresh_from_db()
    assert run.cancel_requested
    queued = LoadTestRun.objects.create(name="q", config={})
    status, body = api("POST", f"/api/v1/runs/{queued.pk}/cancel/", token)
    assert status == 200 and body["status"] == "cancelled"
    status, body = api("POST", f"/api/v1/runs/{queued.pk}/cancel/", token)
    assert status == 409 and "already ended" in body["error"]


def test_session_requests_keep_the_csrf_check(runner: Any, definition: LoadTestDefinition) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(runner)
    status, body = api("POST", "/api/v1/runs/", body={"definition": "smoke"}, client=client)
    assert status == 403 and "CSRF" in body["error"]
    run = LoadTestRun.objects.create(name="r", config={})
    assert api("GET", f"/api/v1/runs/{run.pk}/", client=client)[0] == 200
    # A token request needs no CSRF token, even from a client with a session.
    status, _ = api("POST", "/api/v1/runs/", token_for(runner), {"definition": "smoke"}, client)
    assert status == 201


def test_a_wrong_method_is_a_405(runner: Any) -> None:
    status, body = api("GET", "/api/v1/runs/", token_for(runner))
    assert status == 405 and "POST" in body["error"]


def test_definitions_read_and_write_as_documents(
    admin_user: Any, definition: LoadTestDefinition
) -> None:
    LoadTestStep.objects.filter(name="ok").update(headers={"Authorization": "Bearer stored-key"})
    token = token_for(admin_user)
    status, document = api("GET", "/api/v1/definitions/smoke/", token)
    assert status == 200
    assert document["version"] == 1 and document["name"] == "smoke"
    assert "stored-key" not in json.dumps(document)  # a placeholder stands for it

    document["users"] = 6
    status, answer = api("PUT", "/api/v1/definitions/smoke/", token, document)
    assert status == 200, answer
    assert answer["action"] == "updated" and answer["document"]["users"] == 6
    # The secret was not in the document: its stored value is kept, never read from the
    # server's environment.
    assert LoadTestStep.objects.get(name="ok").headers == {"Authorization": "Bearer stored-key"}

    copy = {**document, "name": "smoke-copy"}
    status, answer = api("PUT", "/api/v1/definitions/smoke-copy/", token, copy)
    # A new definition's placeholder has no stored value to keep, and the server's environment
    # is never read: the secret must come in the document.
    assert status == 400 and "steps[0].headers.Authorization" in answer["errors"]
    status, answer = api("PUT", "/api/v1/definitions/other/", token, document)
    assert status == 400 and "name" in answer["errors"]
    document["users"] = -1
    status, answer = api("PUT", "/api/v1/definitions/smoke/", token, document)
    assert status == 400 and "users" in answer["errors"]
    assert api("GET", "/api/v1/definitions/nope/", token)[0] == 404


def test_the_admin_shows_a_new_token_once_and_keeps_only_its_digest(admin_client: Any) -> None:
    response = admin_client.post(
        "/admin/loadtests/apitoken/add/", {"user": admin_client.session["_auth_user_id"],
                                           "name": "ci"},
    )  # fmt: skip
    assert response.status_code == 200  # the page itself, not a message in a cookie
    assert not list(response.context["messages"])
    token = response.context["token"]
    assert token.startswith(tokens.SCHEME) and token in response.content.decode()
    stored = ApiToken.objects.get()
    assert stored.token_hash == tokens.digest_of(token) and stored.name == "ci"
    page = admin_client.get(f"/admin/loadtests/apitoken/{stored.pk}/change/").content.decode()
    assert token not in page and stored.prefix in page
    assert api("GET", "/api/v1/runs/1/", token)[0] == 404  # it works: no such run


def test_following_a_run_costs_a_fixed_number_of_queries(
    runner: Any, django_assert_num_queries: Any
) -> None:
    token = token_for(runner)
    run = LoadTestRun.objects.create(
        name="r", config={}, status=RunStatus.RUNNING, started_at=timezone.now()
    )
    api("GET", f"/api/v1/runs/{run.pk}/", token)  # records the token's use
    # The token with its user, the user's permissions (its own and its groups'), the run, its
    # latest second.
    with django_assert_num_queries(5):
        status, body = api("GET", f"/api/v1/runs/{run.pk}/", token)
    assert status == 200 and body["progress"]["planned_s"] == 0
