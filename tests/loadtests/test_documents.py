from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from loadtests import documents
from loadtests.engine import EngineConfig
from loadtests.models import LoadTestDefinition, LoadTestStep

pytestmark = pytest.mark.django_db

TOKEN = "Bearer s3cret-token-value"


def base(target_url: str, name: str = "shape", **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": 1,
        "name": name,
        "target_base_url": target_url,
        "duration_s": 10,
        "steps": [{"name": "ok", "method": "GET", "path": "/ok"}],
    }
    document.update(fields)
    return document


def shapes(target_url: str) -> dict[str, dict[str, Any]]:
    return {
        "closed with stages": base(
            target_url,
            users=5,
            think_time_min_s=0.1,
            think_time_max_s=0.5,
            stages=[{"duration_s": 4, "target": 5}, {"duration_s": 6, "target": 2}],
        ),
        "open": base(target_url, load_model="open", rate_rps=25.5, max_connections=7),
        "with checks": base(
            target_url,
            steps=[
                {
                    "name": "c",
                    "method": "GET",
                    "path": "/ok",
                    "check_type": "contains",
                    "check_value": "ok",
                },
                {
                    "name": "j",
                    "method": "POST",
                    "path": "/json?x=1",
                    "body": '{"a": 1}',
                    "weight": 3,
                    "expected_statuses": [200, 201],
                    "check_type": "json_equals",
                    "check_path": "status",
                    "check_value": '"ok"',
                },
            ],
        ),  # fmt: skip
        "headers with secrets": base(
            target_url,
            steps=[
                {
                    "name": "auth",
                    "method": "GET",
                    "path": "/ok",
                    "headers": {
                        "Authorization": "${AUTHORIZATION}",
                        "X-Api-Key": "${X_API_KEY}",
                        "Accept": "application/json",
                    },
                    "secret_headers": ["X-Api-Key"],
                },
            ],
        ),  # fmt: skip
        "thresholds": base(
            target_url,
            thresholds={
                "p95_ms": 200,
                "p99_ms": 500,
                "error_rate_pct": 1,
                "min_throughput_rps": 10,
                "iteration_p95_ms": 2000,
            },
            abort_error_rate_pct=None,
            follow_redirects=True,
            verify_tls=False,
            timeout_s=2.5,
        ),  # fmt: skip
        "tags": base(target_url, description="nightly\nsmoke", tags=["smoke", "nightly"]),
    }


ENVIRON = {"AUTHORIZATION": TOKEN, "X_API_KEY": "k3y-value"}


@pytest.mark.parametrize(
    "shape",
    ["closed with stages", "open", "with checks", "headers with secrets", "thresholds", "tags"],
)
def test_it_exports_what_it_imported_for_every_shape(shape: str, target_url: str) -> None:
    document = shapes(target_url)[shape]
    change = documents.apply_document(document, environ=ENVIRON)
    assert change.action == "created"
    exported = documents.document_of(LoadTestDefinition.objects.get(name="shape"))
    again = copy.deepcopy(exported)
    LoadTestDefinition.objects.all().delete()
    documents.apply_document(again, environ=ENVIRON)
    stored = LoadTestDefinition.objects.get(name="shape")
    assert documents.document_of(stored) == exported
    # Every field the document gave survives, in the document's own names.
    for key, value in document.items():
        if key == "tags":
            assert exported[key] == sorted(value)
        elif key != "steps":
            assert exported[key] == value, key
    for given, shown in zip(document["steps"], exported["steps"], strict=True):
        assert {k: v for k, v in shown.items() if k in given} == given
    assert documents.apply_document(exported, environ=ENVIRON).action == "unchanged"


def test_it_takes_secrets_from_the_environment_and_never_exports_them(target_url: str) -> None:
    documents.apply_document(shapes(target_url)["headers with secrets"], environ=ENVIRON)
    definition = LoadTestDefinition.objects.get(name="shape")
    headers = definition.steps.get().headers
    assert headers["Authorization"] == TOKEN and headers["X-Api-Key"] == "k3y-value"
    exported = json.dumps(documents.document_of(definition))
    assert "s3cret" not in exported and "k3y-value" not in exported
    assert documents.freeze_definition(definition)["steps"][0]["headers"] == headers


def test_it_keeps_a_stored_secret_when_the_environment_does_not_give_it(target_url: str) -> None:
    documents.apply_document(shapes(target_url)["headers with secrets"], environ=ENVIRON)
    exported = documents.document_of(LoadTestDefinition.objects.get(name="shape"))
    exported["duration_s"] = 20
    change = documents.apply_document(exported, environ={})
    assert (change.action, change.fields) == ("updated", ["duration_s"])
    assert LoadTestDefinition.objects.get().steps.get().headers["Authorization"] == TOKEN


def test_it_names_the_variable_a_new_secret_needs(target_url: str) -> None:
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document(shapes(target_url)["headers with secrets"], environ={})
    problems = caught.value.message_dict
    assert "AUTHORIZATION" in problems["steps[0].headers.Authorization"][0]
    assert not LoadTestDefinition.objects.exists()


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"load_model": "open", "rate_rps": 0}, "rate_rps", "rate"),
        ({"users": 20_000}, "users", "10000"),
        ({"duration_s": 10**6}, "duration_s", "86400"),
        ({"target_base_url": "ftp://x"}, "target_base_url", "http"),
        ({"thresholds": {"p95_ms": -1}}, "thresholds.p95_ms", "0"),
        ({"stages": [{"duration_s": 3, "target": 1}]}, "stages", "add up"),
        ({"tags": ["not a slug"]}, "tags[0]", "letters"),
        ({"color": "red"}, "color", "Not a field"),
        ({"version": 2}, "version", "1"),
    ],
)
def test_an_import_error_names_the_field_path(
    target_url: str, change: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document({**base(target_url), **change})
    problems = caught.value.message_dict
    assert path in problems, problems
    assert words.lower() in " ".join(problems[path]).lower()


def test_a_step_error_names_the_step_by_its_index(target_url: str) -> None:
    steps = [
        {"name": "a", "method": "GET", "path": "/ok"},
        {"name": "b", "method": "GET", "path": "/ok"},
        {"name": "c", "method": "GET", "path": "no-slash", "expected_statuses": [700]},
    ]
    with pytest.raises(documents.DocumentInvalid) as caught:
        documents.apply_document(base(target_url, steps=steps))
    problems = caught.value.message_dict
    assert "steps[2].path" in problems and "steps[2].expected_statuses" in problems
    assert "/" in problems["steps[2].path"][0]


def test_the_engine_reads_the_document_as_it_is(definition: LoadTestDefinition) -> None:
    frozen = documents.freeze_definition(definition)
    config = documents.engine_config_from(frozen)
    assert config == EngineConfig.from_dict(frozen)
    assert set(config.to_dict()) <= set(frozen)
    assert (config.target_base_url, config.users, config.steps[1].check_json_value) == (
        frozen["target_base_url"], 4, "ok",
    )  # fmt: skip


def test_the_schema_lists_every_field_a_document_has(definition: LoadTestDefinition) -> None:
    schema = json.loads(documents.SCHEMA_PATH.read_text())
    frozen = documents.freeze_definition(definition)
    assert set(schema["properties"]) == set(frozen) == documents.TOP_FIELDS
    assert set(schema["properties"]["steps"]["items"]["properties"]) == set(frozen["steps"][0])
    assert set(schema["properties"]["thresholds"]["properties"]) == set(frozen["thresholds"])


def test_a_dry_run_says_what_would_change_and_changes_nothing(
    definition: LoadTestDefinition,
) -> None:
    before = documents.freeze_definition(definition)
    document = documents.document_of(definition)
    document["users"] = 8
    document["steps"][0]["path"] = "/json"
    change = documents.apply_document(document, dry_run=True)
    assert (change.action, change.fields) == ("updated", ["users", "steps[0].path"])
    new = documents.apply_document({**document, "name": "other"}, dry_run=True)
    assert new.action == "created"
    definition.refresh_from_db()
    assert documents.freeze_definition(definition) == before
    assert LoadTestDefinition.objects.count() == 1


def test_an_import_updates_by_name_and_replaces_the_steps(definition: LoadTestDefinition) -> None:
    document = documents.document_of(definition)
    document["steps"] = document["steps"][1:]
    documents.apply_document(document)
    assert list(definition.steps.values_list("name", flat=True)) == ["json"]
    assert LoadTestDefinition.objects.count() == 1


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_file_is_imported_all_or_nothing(target_url: str, tmp_path: Path) -> None:
    good = base(target_url, "first")
    bad = base(target_url, "second", users=-3)
    result = documents.import_file(write(tmp_path, "both.json", [good, bad]))
    assert "document 2 (second)" in result.error and "users" in result.error
    assert result.changes == []
    assert not LoadTestDefinition.objects.exists()
    alone = documents.import_file(write(tmp_path, "first.json", good))
    assert (alone.error, [c.action for c in alone.changes]) == ("", ["created"])


def test_if_missing_never_overwrites_an_edited_definition(definition: LoadTestDefinition) -> None:
    document = documents.document_of(definition)
    LoadTestStep.objects.filter(definition=definition).update(weight=7)
    change = documents.apply_document({**document, "users": 9}, if_missing=True)
    assert change.action == "kept"
    definition.refresh_from_db()
    assert definition.users == 4
    assert set(definition.steps.values_list("weight", flat=True)) == {7}


def test_the_docs_example_is_a_valid_document() -> None:
    page = (documents.SCHEMA_PATH.parents[2] / "docs" / "load-tests.md").read_text()
    example = page.split("## Load tests as code", 1)[1].split("```json\n", 1)[1]
    document = json.loads(example.split("```", 1)[0])
    change = documents.apply_document(document, dry_run=True, environ={"API_TOKEN": "t0ken"})
    assert change.action == "created"
    assert set(document) <= set(json.loads(documents.SCHEMA_PATH.read_text())["properties"])


def test_every_run_freezes_a_version_1_document(
    definition: LoadTestDefinition, target_url: str
) -> None:
    from loadtests import adhoc, services

    for frozen in (
        services.create_run(definition).config,
        adhoc.adhoc_config(f"{target_url}/ok", users=2, duration_s=1),
    ):
        assert frozen["version"] == documents.VERSION
        assert set(frozen) == documents.TOP_FIELDS
        assert documents.upgrade(frozen) == frozen
        assert documents.config_problems(frozen) == {}
