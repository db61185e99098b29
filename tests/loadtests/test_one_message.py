"""Each rule speaks with one voice: the engine's message for a bad setting is what the admin,
`loadtest import` and the HTTP API say too, under the field's name in the user's terms."""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from loadtests import documents
from loadtests.engine import config as engine_config
from loadtests.models import LoadTestDefinition
from tests.engine.helpers import closed, step
from tests.loadtests.admin_forms import ADD
from tests.loadtests.admin_forms import admin_form as form_data
from tests.loadtests.test_api import api, token_for
from tests.loadtests.test_validation import admin_errors, headers_data

pytestmark = pytest.mark.django_db

# name: (engine change, admin form change, document change, admin error key, document path)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], str, str]] = {
    "users-above-cap": (
        {"users": engine_config.MAX_USERS + 1},
        {"users": str(engine_config.MAX_USERS + 1)},
        {"users": engine_config.MAX_USERS + 1},
        "users",
        "users",
    ),
    "timeout-above-cap": (
        {"timeout_s": engine_config.MAX_TIMEOUT_S + 1},
        {"timeout_s": str(engine_config.MAX_TIMEOUT_S + 1)},
        {"timeout_s": engine_config.MAX_TIMEOUT_S + 1},
        "timeout_s",
        "timeout_s",
    ),
    "space-in-path": (
        {"step": {"path": "/a b"}},
        {"steps-0-path": "/a b"},
        {"step": {"path": "/a b"}},
        "steps-0-path",
        "steps[0].path",
    ),
    "paren-in-header-name": (
        {"step": {"headers": {"X(T": "1"}}},
        headers_data({"X(T": "1"}),
        {"step": {"headers": {"X(T": "1"}}},
        "steps-0-headers",
        "steps[0].headers",
    ),
}


def engine_messages(target_url: str, change: dict[str, Any]) -> list[str]:
    config = closed(target_url, step("/ok", name="home"), users=5, duration_s=10, timeout_s=5)
    step_change = change.get("step", {})
    config = replace(config, **{k: v for k, v in change.items() if k != "step"})
    config = replace(config, steps=(replace(config.steps[0], **step_change),))
    return [message for _, message in config.validate()]


def bad_document(good: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    document = json.loads(json.dumps(good))
    document.update({k: v for k, v in change.items() if k != "step"})
    document["steps"][0].update(change.get("step", {}))
    return document


def texts(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_surface_gives_the_engines_message_for_a_bad_setting(
    admin_client: Any, admin_user: Any, target_url: str, tmp_path: Path, case: tuple[Any, ...]
) -> None:
    engine_change, form_change, document_change, admin_key, path = case
    messages = engine_messages(target_url, engine_change)
    assert len(messages) == 1, messages
    message = messages[0]

    response = admin_client.post(ADD, form_data(target_url, **form_change))
    assert response.status_code == 200
    assert message in admin_errors(response).get(admin_key, []), admin_errors(response)
    assert not LoadTestDefinition.objects.exists()

    saved = admin_client.post(ADD, form_data(target_url))
    assert saved.status_code == 302
    good = documents.document_of(LoadTestDefinition.objects.get())
    document = bad_document(good, document_change)

    file = tmp_path / "bad.json"
    file.write_text(json.dumps(document))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("loadtest", "import", str(file), stdout=out, stderr=err)
    said = out.getvalue() + err.getvalue()
    assert path in said and message in said, said

    status, answer = api(
        "PUT", f"/api/v1/definitions/{good['name']}/", token_for(admin_user), document
    )
    assert status == 400
    assert message in answer["errors"].get(path, []), answer
    # The refused document changed nothing.
    assert documents.document_of(LoadTestDefinition.objects.get()) == good


def test_the_engine_names_fields_as_the_document_does() -> None:
    bad_rate = replace(closed("http://127.0.0.1:1"), load_model="open", rate_rps=0)
    assert "rate_rps" in dict(bad_rate.validate())
    bad_status = closed(
        "http://127.0.0.1:1", step("/a"), step("/b"), step("/c", expected_statuses=(99,))
    )
    assert "steps[2].expected_statuses" in dict(bad_status.validate())
