"""A password in the target's URL (`http://user:password@host`) is a secret like a step's
secret header: every output shows the mask, exports carry a `${...}` placeholder, and a
secret header's value repeated in a step's path is masked wherever the step is shown."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from loadtests import services
from loadtests.models import ApiToken, LoadTestDefinition, LoadTestStep
from loadtests.secrets import (
    MASK,
    masked_config,
    masked_url,
    restore_masked_url,
    same_target,
    with_userinfo,
)

pytestmark = pytest.mark.django_db

USER, PASSWORD = "ops", "pw-9c1e-url-secret"
API_KEY = "key-5b2d-path-secret"
SECRETS = (PASSWORD, f"{USER}:{PASSWORD}", API_KEY)
HOST = "127.0.0.1:8001"  # nothing is sent: only what is shown matters here


@pytest.fixture
def url_secret_definition(db: Any) -> LoadTestDefinition:
    definition = LoadTestDefinition.objects.create(
        name="url-secrets",
        target_base_url=f"http://{USER}:{PASSWORD}@{HOST}",
        load_model="closed",
        users=1,
        duration_s=1,
        timeout_s=2,
    )
    LoadTestStep.objects.create(
        definition=definition,
        name="keyed",
        path=f"/ok?key={API_KEY}",
        headers={"X-Api-Key": API_KEY, "Accept": "application/json"},
        secret_headers=["X-Api-Key"],
    )
    # Another step repeats both secrets: masked there too, wherever the step is shown.
    LoadTestStep.objects.create(
        definition=definition, order=1, name="echo", path=f"/ok?pw={PASSWORD}&k={API_KEY}"
    )
    return definition


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret!r}"


def api_get(client: Any, path: str, token: str) -> str:
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, (path, response.content[:300])
    return response.content.decode()


def test_no_output_shows_the_url_password_or_a_secret_repeated_in_a_path(
    admin_client: Any, admin_user: Any, url_secret_definition: LoadTestDefinition
) -> None:
    definition = url_secret_definition
    run = services.create_run(definition)
    api_token = ApiToken(user=admin_user, name="reader")
    token = api_token.set_new_token()
    api_token.save()
    pages = {
        "definition page": f"/definitions/{definition.pk}/",
        "document.json": f"/definitions/{definition.pk}/document.json",
        "summary.json": f"/runs/{run.pk}/summary.json",
        "run page": f"/runs/{run.pk}/",
        "run live": f"/runs/{run.pk}/live/",
        "HTML report": f"/runs/{run.pk}/report.html",
        "overview": "/",
        "admin definitions": "/admin/loadtests/loadtestdefinition/",
        "admin definition": f"/admin/loadtests/loadtestdefinition/{definition.pk}/change/",
        "admin run": f"/admin/loadtests/loadtestrun/{run.pk}/change/",
    }
    for where, path in pages.items():
        response = admin_client.get(path)
        assert response.status_code == 200, (where, response.status_code)
        assert_no_secret(where, response.content.decode())
    assert MASK in admin_client.get(f"/definitions/{definition.pk}/").content.decode()
    api_definition = api_get(admin_client, "/api/v1/definitions/url-secrets/", token)
    assert_no_secret("API definition", api_definition)
    assert_no_secret("API run", api_get(admin_client, f"/api/v1/runs/{run.pk}/", token))
    for report in ("report.html", "junit.xml", "summary.md"):
        text = api_get(admin_client, f"/api/v1/runs/{run.pk}/{report}", token)
        assert_no_secret(f"API {report}", text)
    out = StringIO()
    call_command("loadtest", "export", "url-secrets", stdout=out, stderr=StringIO())
    assert_no_secret("loadtest export", out.getvalue())


def test_the_export_carries_a_placeholder_for_the_url_userinfo(
    admin_client: Any, url_secret_definition: LoadTestDefinition
) -> None:
    response = admin_client.get(f"/definitions/{url_secret_definition.pk}/document.json")
    document = json.loads(response.content)
    assert document["target_base_url"] == f"http://${{TARGET_USERINFO}}@{HOST}"
    step = document["steps"][0]
    assert step["headers"] == {"X-Api-Key": "${X_API_KEY}", "Accept": "application/json"}
    assert step["path"] == f"/ok?key={MASK}"


def test_the_admin_inline_label_masks_a_secret_repeated_in_the_path(
    admin_client: Any, url_secret_definition: LoadTestDefinition
) -> None:
    url = f"/admin/loadtests/loadtestdefinition/{url_secret_definition.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert f"GET /ok?key={MASK}" in html
    assert f"GET /ok?pw={MASK}&amp;k={MASK}" in html  # another step's secrets, the URL's
    assert_no_secret("admin definition", html)


# -- the rules, on plain data ------------------------------------------------------------------


def test_the_user_information_is_masked_in_the_url_and_wherever_it_is_repeated() -> None:
    config = {"target_base_url": "http://ops:p%40ss-word@h:8001/api", "name": "p@ss-word in text"}
    shown = masked_config(config)
    assert shown["target_base_url"] == f"http://{MASK}@h:8001/api"
    assert shown["name"] == f"{MASK} in text"  # percent-decoded too: a client may print either
    exported = masked_config(config, placeholders=True)
    assert exported["target_base_url"] == "http://${TARGET_USERINFO}@h:8001/api"
    assert masked_url("http://h:8001") == "http://h:8001"
    assert with_userinfo(f"http://{MASK}@h", "a:b") == "http://a:b@h"


def test_a_stored_secret_follows_only_the_same_scheme_host_and_port() -> None:
    assert same_target("http://u:p@Host", "http://HOST:80/other-path")
    assert not same_target("http://h:8001", "http://h:8002")
    assert not same_target("http://h", "https://h")
    assert not same_target("http://h", "http://h.evil.example")
    stored = "http://u:secret-pw@h:8001"
    assert restore_masked_url(f"http://{MASK}@h:8001/v2", stored) == (
        "http://u:secret-pw@h:8001/v2",
        None,
    )
    kept, problem = restore_masked_url(f"http://{MASK}@other:8001", stored)
    assert MASK in kept and problem and "type the user and password again" in problem
    assert restore_masked_url(f"http://{MASK}@h:8001", "http://h:8001")[1]


def test_an_exported_document_imports_again_keeping_what_it_masked(
    url_secret_definition: LoadTestDefinition, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv("TARGET_USERINFO", raising=False)
    monkeypatch.delenv("X_API_KEY", raising=False)
    exported = StringIO()
    call_command("loadtest", "export", "url-secrets", stdout=exported, stderr=StringIO())
    file = tmp_path / "url-secrets.json"
    file.write_text(exported.getvalue())
    out = StringIO()
    call_command("loadtest", "import", str(file), stdout=out, stderr=StringIO())
    assert "unchanged url-secrets" in out.getvalue()
    definition = LoadTestDefinition.objects.get()
    assert definition.target_base_url == f"http://{USER}:{PASSWORD}@{HOST}"
    paths = [step.path for step in definition.steps.order_by("order")]
    assert paths == [f"/ok?key={API_KEY}", f"/ok?pw={PASSWORD}&k={API_KEY}"]
    # The mask in an edited text stands for nothing stored: refused, naming the field.
    document = json.loads(exported.getvalue())
    document["steps"][1]["path"] = f"/other?k={MASK}"
    file.write_text(json.dumps(document))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("loadtest", "import", str(file), stdout=StringIO(), stderr=err)
    assert f"steps[1].path: {MASK} stands for a secret the export left out" in err.getvalue()
    assert definition.steps.get(order=1).path == f"/ok?pw={PASSWORD}&k={API_KEY}"
