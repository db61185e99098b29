"""An export writes a value written with ${NAME} references exactly as it was written; only a
secret typed as a literal value becomes a placeholder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from loadtests import documents
from loadtests.models import LoadTestDefinition

pytestmark = pytest.mark.django_db

FLOW = Path(settings.BASE_DIR) / "emissions" / "loadtests" / "emissions-upload-flow.json"
TOKEN = "tok-0123456789abcdef"
ENVIRON = {"EMISSIONS_API_TOKEN": TOKEN}


def import_text(text: str, environ: dict[str, str] = ENVIRON) -> documents.Change:
    return documents.apply_document(json.loads(text), environ=environ)


def authorization_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if '"Authorization"' in line]


def exported_text(name: str = "emissions-upload-flow") -> str:
    definition = LoadTestDefinition.objects.get(name=name)
    return json.dumps(documents.document_of(definition), indent=2, ensure_ascii=False) + "\n"


def test_the_reference_flow_exports_its_bearer_header_byte_for_byte() -> None:
    written = FLOW.read_text()
    assert import_text(written).action == "created"
    definition = LoadTestDefinition.objects.get(name="emissions-upload-flow")
    # The engine gets the value; the export gets the text as written.
    headers = [step.headers.get("Authorization") for step in definition.steps.all()]
    assert f"Bearer {TOKEN}" in headers
    exported = exported_text()
    assert authorization_lines(exported)
    assert authorization_lines(exported) == authorization_lines(written)
    assert TOKEN not in exported and "${AUTHORIZATION}" not in exported
    document = json.loads(exported)
    assert document["target_base_url"] == json.loads(written)["target_base_url"]


def test_the_exported_reference_flow_round_trips_unchanged() -> None:
    import_text(FLOW.read_text())
    first = exported_text()
    change = import_text(first)
    assert change.action == "unchanged", change.fields
    assert exported_text() == first
    assert json.loads(first)["steps"] == json.loads(FLOW.read_text())["steps"]


def test_a_value_changed_since_it_was_written_exports_as_a_placeholder() -> None:
    import_text(FLOW.read_text())
    document: dict[str, Any] = json.loads(exported_text())
    document["steps"][0]["headers"]["Authorization"] = "Bearer typed-by-hand-secret"
    document["target_base_url"] = "http://127.0.0.1:8001"
    change = import_text(json.dumps(document))
    assert change.action == "updated"
    exported = json.loads(exported_text())
    assert exported["steps"][0]["headers"]["Authorization"] == "${AUTHORIZATION}"
    assert exported["steps"][1]["headers"]["Authorization"] == "Bearer ${EMISSIONS_API_TOKEN}"
    assert exported["target_base_url"] == "http://127.0.0.1:8001"
    assert "typed-by-hand-secret" not in json.dumps(exported)


def test_a_template_written_in_place_of_the_same_value_counts_as_a_change() -> None:
    document = json.loads(FLOW.read_text())
    for step in document["steps"]:
        if "Authorization" in step["headers"]:
            step["headers"]["Authorization"] = f"Bearer {TOKEN}"
    import_text(json.dumps(document))
    assert exported_text().count('"${AUTHORIZATION}"') >= 1
    change = import_text(FLOW.read_text())
    assert change.action == "updated"
    assert any("Authorization" in path for path in change.fields), change.fields
    assert authorization_lines(exported_text()) == authorization_lines(FLOW.read_text())
