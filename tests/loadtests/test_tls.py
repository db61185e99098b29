from __future__ import annotations

import json
from typing import Any

import pytest

from loadtests import documents, lifecycle, services
from loadtests.models import LoadTestDefinition
from tests.loadtests.test_runs import run_cli
from tests.tls import HttpsTarget

pytestmark = pytest.mark.django_db


@pytest.fixture
def untrusted_target(https_target: HttpsTarget, monkeypatch: pytest.MonkeyPatch) -> str:
    """The https target's base URL, with its CA kept out of this process's trust store."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    return https_target.base_url


def test_a_definition_verifies_certificates_unless_told_not_to(
    definition: LoadTestDefinition, untrusted_target: str
) -> None:
    definition.target_base_url = untrusted_target
    definition.abort_error_rate_pct = None
    definition.save()
    assert definition.verify_tls is True
    verified = lifecycle.execute(services.create_run(definition).pk)
    assert verified.status == "failed"
    assert verified.errors == verified.requests > 0
    assert set(verified.errors_by_class) == {"tls"}

    definition.verify_tls = False
    definition.save()
    run = services.create_run(definition)
    assert run.config["verify_tls"] is False
    done = lifecycle.execute(run.pk)
    assert done.status == "passed", done.status_reason
    assert done.requests > 0 and done.errors == 0
    assert {step for step in done.steps_summary} == {"ok", "json"}


def test_a_run_frozen_before_the_setting_existed_verifies_certificates(
    definition: LoadTestDefinition,
) -> None:
    frozen = documents.freeze_definition(definition)
    del frozen["verify_tls"]
    assert documents.engine_config_from(frozen).verify_tls is True


def test_the_cli_skips_verification_with_insecure(untrusted_target: str) -> None:
    args = ("url", f"{untrusted_target}/ok", "--users", "1", "--duration", "1", "--json")
    code, out, err = run_cli(*args, "--insecure")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["requests"] > 0 and summary["errors"] == 0

    code, out, err = run_cli(*args)
    summary = json.loads(out)
    assert summary["errors"] == summary["requests"] > 0
    assert set(summary["errors_by_class"]) == {"tls"}
    assert "certificate verify failed" in summary["errors_by_class"]["tls"]["sample"]


def test_the_definition_page_says_when_certificates_are_not_verified(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    LoadTestDefinition.objects.filter(pk=definition.pk).update(verify_tls=False)
    body = admin_client.get(f"/definitions/{definition.pk}/").content.decode()
    assert "not verified (self-signed test target)" in body


def test_the_admin_offers_the_switch_ticked_for_a_new_definition(admin_client: Any) -> None:
    response = admin_client.get("/admin/loadtests/loadtestdefinition/add/")
    assert response.context["adminform"].form["verify_tls"].value() is True
    assert "Turn off only for test targets with a self-signed certificate." in (
        response.content.decode()
    )
