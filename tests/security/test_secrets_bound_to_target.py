"""A stored secret of a load-test definition (a step's secret headers, a secret repeated in a
step's path, the target URL's user and password) is bound to the target it was stored for.
Pointing the definition at another scheme, host or port while keeping the masks (admin) or the
placeholders (API, `loadtest import`) is refused, field by field, until the secrets are typed
again; nothing stored changes. On the same target, the masks keep the stored values."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from loadtests.models import ApiToken, LoadTestDefinition, LoadTestStep
from loadtests.secrets import MASK
from tests.loadtests.admin_forms import admin_form

pytestmark = pytest.mark.django_db

URL = "http://ops:pw-41d0-stored@127.0.0.1:8001"
API_KEY = "key-a7e3-stored"
PATH = f"/ok?key={API_KEY}"
MOVED = "The target changed from http://127.0.0.1:8001 to http://localhost:8001"


@pytest.fixture
def stored(db: Any) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="bound", target_base_url=URL, load_model="closed", users=1, duration_s=1, timeout_s=2
    )
    LoadTestStep.objects.create(
        definition=definition,
        name="keyed",
        path=PATH,
        headers={"X-Api-Key": API_KEY, "Accept": "application/json"},
        secret_headers=["X-Api-Key"],
    )
    return definition


def change_url(definition: LoadTestDefinition) -> str:
    return f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/"


def post_as_shown(client: Any, definition: LoadTestDefinition, **typed: str) -> Any:
    """Post the change form with what it shows (the masks), and `typed` over it."""
    step = definition.steps.get()
    data = admin_form(
        f"http://{MASK}@127.0.0.1:8001",
        **{
            "name": definition.name,
            "users": "1",
            "duration_s": "1",
            "timeout_s": "2",
            "abort_error_rate_pct": "",
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(step.pk),
            "steps-0-definition": str(definition.pk),
            "steps-0-name": step.name,
            "steps-0-path": f"/ok?key={MASK}",
            "steps-0-headers": json.dumps({"X-Api-Key": MASK, "Accept": "application/json"}),
            "steps-0-secret_headers": json.dumps(step.secret_headers),
            **typed,
        },
    )
    return client.post(change_url(definition), data)


def assert_unchanged(definition: LoadTestDefinition) -> None:
    definition.refresh_from_db()
    step = definition.steps.get()
    assert definition.target_base_url == URL
    assert step.path == PATH and step.headers["X-Api-Key"] == API_KEY


def test_the_admin_form_shows_every_secret_masked(
    admin_client: Any, stored: LoadTestDefinition
) -> None:
    html = admin_client.get(change_url(stored)).content.decode()
    assert f"http://{MASK}@127.0.0.1:8001" in html and f"/ok?key={MASK}" in html
    for secret in ("pw-41d0-stored", API_KEY):
        assert secret not in html


def test_the_masks_keep_the_stored_secrets_on_the_same_target(
    admin_client: Any, stored: LoadTestDefinition
) -> None:
    response = post_as_shown(admin_client, stored, description="edited")
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert_unchanged(stored)
    assert LoadTestDefinition.objects.get().description == "edited"


def test_a_new_host_with_the_masks_kept_is_refused_naming_each_secret(
    admin_client: Any, stored: LoadTestDefinition
) -> None:
    response = post_as_shown(admin_client, stored, target_base_url=f"http://{MASK}@localhost:8001")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count(MOVED) == 3  # the user and password, the header, the path
    assert "type the user and password again" in html
    assert "X-Api-Key: The target changed" in html
    assert_unchanged(stored)


@pytest.mark.parametrize("moved", ["http://127.0.0.1:9001", "https://127.0.0.1:8001"])
def test_a_new_port_or_scheme_keeping_the_header_masks_is_refused(
    admin_client: Any, stored: LoadTestDefinition, moved: str
) -> None:
    response = post_as_shown(admin_client, stored, target_base_url=moved)
    assert response.status_code == 200
    assert "X-Api-Key: The target changed from http://127.0.0.1:8001" in response.content.decode()
    assert_unchanged(stored)


def test_a_new_host_with_the_secrets_typed_again_is_saved(
    admin_client: Any, stored: LoadTestDefinition
) -> None:
    headers = {"X-Api-Key": "key-for-localhost", "Accept": "application/json"}
    response = post_as_shown(
        admin_client,
        stored,
        target_base_url="http://ops:pw-for-localhost@localhost:8001",
        **{"steps-0-path": "/ok?key=key-for-localhost", "steps-0-headers": json.dumps(headers)},
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    stored.refresh_from_db()
    assert stored.target_base_url == "http://ops:pw-for-localhost@localhost:8001"
    assert stored.steps.get().headers == headers


def put(client: Any, token: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.put(
        "/api/v1/definitions/bound/",
        json.dumps(document),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    return response.status_code, response.json()


def test_the_api_keeps_left_out_secrets_only_for_the_same_target(
    client: Any, admin_user: Any, stored: LoadTestDefinition
) -> None:
    api_token = ApiToken(user=admin_user, name="ci")
    token = api_token.set_new_token()
    api_token.save()
    document = client.get("/api/v1/definitions/bound/", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert document["target_base_url"] == "http://${TARGET_USERINFO}@127.0.0.1:8001"
    status, answer = put(client, token, {**document, "description": "same target"})
    assert status == 200, answer
    assert_unchanged(stored)

    moved = {**document, "target_base_url": "http://${TARGET_USERINFO}@localhost:8001"}
    status, answer = put(client, token, moved)
    assert status == 400
    errors = answer["errors"]
    assert set(errors) == {"target_base_url", "steps[0].headers.X-Api-Key", "steps[0].path"}
    assert all(MOVED in " ".join(messages) for messages in errors.values())
    assert_unchanged(stored)


def test_loadtest_import_keeps_left_out_secrets_only_for_the_same_target(
    stored: LoadTestDefinition, tmp_path: Path, monkeypatch: Any
) -> None:
    out = StringIO()
    call_command("loadtest", "export", "bound", stdout=out, stderr=StringIO())
    document = json.loads(out.getvalue())
    monkeypatch.delenv("X_API_KEY", raising=False)
    monkeypatch.delenv("TARGET_USERINFO", raising=False)
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({**document, "target_base_url": "http://localhost:8001"}))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("loadtest", "import", str(moved), stdout=StringIO(), stderr=err)
    assert "steps[0].headers.X-Api-Key: Set the environment variable X_API_KEY: " + MOVED in (
        err.getvalue()
    )
    assert_unchanged(stored)
    same = tmp_path / "same.json"
    same.write_text(json.dumps(document))
    call_command("loadtest", "import", str(same), stdout=StringIO(), stderr=StringIO())
    assert_unchanged(stored)
