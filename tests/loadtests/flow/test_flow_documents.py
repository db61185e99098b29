from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from loadtests import documents
from loadtests.models import DataSet, LoadTestDefinition

from .conftest import make_data_set

pytestmark = pytest.mark.django_db
ENVIRON: dict[str, str] = {}


def flow_document(target_url: str, **overrides: Any) -> dict[str, Any]:
    document = {
        "version": 1,
        "name": "journey",
        "mode": "flow",
        "data_set": {"name": "skus", "order": "unique"},
        "target_base_url": target_url,
        "load_model": "open",
        "rate_rps": 5,
        "duration_s": 10,
        "steps": [
            {
                "name": "create",
                "method": "POST",
                "path": "/echo",
                "body": '{"sku": "{{ row.sku }}"}',
                "expected_statuses": [200, 201],
                "extract": [{"variable": "batch_id", "from": "header", "expression": "X-Id"}],
            },
            {
                "name": "wait",
                "method": "GET",
                "path": "/json?id={{ batch_id }}",
                "poll": {"until_path": "$.status", "until_value": "ok", "max_attempts": 5,
                         "interval_s": 0.1},
            },
        ],
        "thresholds": {"iteration_p95_ms": 1500},
    }  # fmt: skip
    document.update(overrides)
    return document


def test_it_round_trips_a_flow_document(target_url: str) -> None:
    data_set = make_data_set()
    change = documents.apply_document(flow_document(target_url), environ=ENVIRON)
    assert change.action == "created"
    definition = LoadTestDefinition.objects.get(name="journey")
    assert (definition.mode, definition.data_set, definition.data_order) == (
        "flow", data_set, "unique",
    )  # fmt: skip
    assert definition.threshold_iteration_p95_ms == 1500
    exported = documents.document_of(definition)
    assert exported["data_set"] == {"name": "skus", "sha256": data_set.sha256, "order": "unique"}
    create, wait = exported["steps"]
    assert create["extract"] == [{"variable": "batch_id", "from": "header", "expression": "X-Id"}]
    assert create["expected_statuses"] == [200, 201] and create["poll"] is None
    # A flow step that names no statuses takes any of 200-399.
    assert wait["expected_statuses"] == []
    assert wait["poll"] == {
        "until_path": "$.status", "until_value": "ok", "max_attempts": 5, "interval_s": 0.1,
    }  # fmt: skip
    assert exported["thresholds"]["iteration_p95_ms"] == 1500
    # Out and back in again: the same document, and the engine reads the same flow.
    LoadTestDefinition.objects.all().delete()
    documents.apply_document(copy.deepcopy(exported), environ=ENVIRON)
    again = documents.document_of(LoadTestDefinition.objects.get(name="journey"))
    assert again == exported
    config = documents.engine_config_from(again, data_set, rows=True)
    assert config.mode == "flow" and config.data_order == "unique"
    assert config.data_rows == ({"sku": "A-1", "qty": "3"}, {"sku": "B-2", "qty": "5"})
    assert config.steps[1].poll is not None and config.steps[1].poll.max_attempts == 5
    assert config.steps[0].extract[0].source == "header"
    assert json.loads(json.dumps(exported)) == exported


def test_a_requests_step_without_statuses_keeps_expecting_200(target_url: str) -> None:
    document = flow_document(target_url, mode="requests", data_set=None)
    document["steps"] = [{"name": "home", "method": "GET", "path": "/ok"}]
    documents.apply_document(document, environ=ENVIRON)
    exported = documents.document_of(LoadTestDefinition.objects.get(name="journey"))
    assert exported["steps"][0]["expected_statuses"] == [200]
    assert exported["mode"] == "requests" and exported["data_set"] is None


def test_an_unknown_data_set_is_a_problem_naming_data_set_name(target_url: str) -> None:
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document(flow_document(target_url), environ=ENVIRON)
    problems = caught.value.message_dict
    assert "data_set.name" in problems
    assert "There is no data set 'skus'" in problems["data_set.name"][0]
    assert not LoadTestDefinition.objects.exists()


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"data_set": {"name": "skus", "order": "shuffled"}}, "data_set.order", "sequential"),
        ({"mode": "journey"}, "mode", "journey"),
    ],
)
def test_a_bad_flow_setting_names_its_path(
    target_url: str, change: dict[str, Any], path: str, words: str
) -> None:
    make_data_set()
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document(flow_document(target_url, **change), environ=ENVIRON)
    assert words in " ".join(caught.value.message_dict[path])


def test_a_template_typo_is_refused_naming_the_step_and_position(target_url: str) -> None:
    make_data_set()
    document = flow_document(target_url)
    document["steps"][1]["path"] = "/json?id={{ batchid }}"
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document(document, environ=ENVIRON)
    message = " ".join(caught.value.message_dict["steps[1].path"])
    assert "batchid" in message and "batch_id" in message and "character" in message
    assert not LoadTestDefinition.objects.exists()


def test_the_schema_names_the_flow_keys(target_url: str) -> None:
    make_data_set()
    documents.apply_document(flow_document(target_url), environ=ENVIRON)
    exported = documents.document_of(LoadTestDefinition.objects.get(name="journey"))
    schema = json.loads(documents.SCHEMA_PATH.read_text())
    assert set(schema["properties"]) == set(exported)
    steps = schema["properties"]["steps"]["items"]["properties"]
    assert set(steps) == set(exported["steps"][0])
    assert set(schema["properties"]["thresholds"]["properties"]) == set(exported["thresholds"])
    assert set(schema["properties"]["data_set"]["properties"]) == set(exported["data_set"])


def test_a_placeholder_reads_an_allowed_setting_when_the_environment_lacks_it(
    target_url: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMISSIONS_API_TOKEN", raising=False)
    settings.EMISSIONS_API_TOKEN = "token-from-settings-123"
    document = flow_document(target_url, data_set=None)
    document["steps"][0]["headers"] = {"Authorization": "Bearer ${EMISSIONS_API_TOKEN}"}
    document["steps"][0]["body"] = "{}"
    documents.apply_document(document)
    stored = LoadTestDefinition.objects.get(name="journey").steps.get(name="create")
    assert stored.headers == {"Authorization": "Bearer token-from-settings-123"}
    # The export never carries it.
    exported = documents.document_of(stored.definition)
    assert "token-from-settings" not in json.dumps(exported)
    assert DataSet.objects.count() == 0
