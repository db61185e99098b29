"""What the bad-input and size tests share: a stored definition, an API token and raw calls
(the bodies are sent as bytes, since json.dumps would refuse or rewrite what they carry)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from loadtests import documents
from loadtests.models import ApiToken, LoadTestDefinition, LoadTestStep

TARGET = "http://127.0.0.1:8001"


def stored_definition(name: str = "smoke") -> LoadTestDefinition:
    """A valid closed-model definition with two steps, as the admin would store it."""
    definition = LoadTestDefinition.objects.create(
        name=name, target_base_url=TARGET, load_model="closed", users=4, duration_s=2
    )
    LoadTestStep.objects.create(definition=definition, name="ok", path="/ok", weight=3)
    LoadTestStep.objects.create(definition=definition, name="json", path="/json")
    return definition


def document_text(definition: LoadTestDefinition) -> str:
    return json.dumps(documents.document_of(definition))


def snapshot(name: str = "smoke") -> dict[str, Any]:
    """The stored definition as a run would freeze it: what a refusal must leave unchanged."""
    return documents.freeze_definition(LoadTestDefinition.objects.get(name=name))


def token_for(user: Any) -> str:
    api_token = ApiToken(user=user, name="ci")
    token = api_token.set_new_token()
    api_token.save()
    return token


def send(method: str, path: str, token: str, body: bytes | str) -> tuple[int, Any]:
    """`body` as it is, with JSON's content type; the status and the JSON answer."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    call = getattr(Client(), method.lower())
    response = call(
        path,
        data=data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.status_code, response.json()


def import_file(path: Path, text: str | bytes) -> tuple[int, str]:
    """`loadtest import` of a file holding `text`: its exit status and what it printed."""
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    out, err = StringIO(), StringIO()
    try:
        call_command("loadtest", "import", str(path), stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, err.getvalue() + out.getvalue()
    return 0, err.getvalue() + out.getvalue()
