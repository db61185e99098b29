"""A load test's sizes are bounded (document bytes, steps, stages, headers, data set rows),
checked before any heavy work, with an error that stays short however much is wrong: it lists
a few problems and says how many more. Nothing stored is lost on a refusal."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from loadtests import datasets, documents
from loadtests.engine.config import (
    MAX_DATA_ROWS,
    MAX_DOCUMENT_BYTES,
    MAX_HEADER_NAME_BYTES,
    MAX_HEADER_VALUE_BYTES,
    MAX_HEADERS,
    MAX_PROBLEMS_SHOWN,
    MAX_STAGES,
    MAX_STEP_BODY_BYTES,
    MAX_STEPS,
    EngineConfig,
    Stage,
    Step,
)
from loadtests.models import LoadTestDefinition, LoadTestRun
from tests.loadtests.admin_forms import ADD, admin_form
from tests.security.bad_input_support import (
    TARGET,
    import_file,
    send,
    snapshot,
    stored_definition,
    token_for,
)

pytestmark = pytest.mark.django_db

MILLION = 10**6
SHORT = 400  # characters: a refusal is a line, not 77 MB


@pytest.fixture
def token(admin_user: Any) -> str:
    stored_definition()
    return token_for(admin_user)


def document(**changes: Any) -> dict[str, Any]:
    """The stored definition's document with `changes`: what a client would send."""
    return {**snapshot(), **changes}


def steps(count: int) -> list[dict[str, Any]]:
    return [{"name": f"s{index}", "method": "GET", "path": "/"} for index in range(count)]


def test_a_million_steps_are_refused_by_their_count_with_a_short_message() -> None:
    stored_definition()
    before = snapshot()
    step = {"name": "s", "method": "GET", "path": "/"}
    with pytest.raises(documents.DocumentInvalid) as refused:
        documents.apply_document(document(steps=[step] * MILLION))
    text = documents.problems_text(refused.value)
    assert f"{MILLION} steps given" in text and f"at most {MAX_STEPS} steps (MAX_STEPS)" in text
    assert len(text) < SHORT
    assert snapshot() == before


def test_a_million_stages_are_refused_by_their_count_with_a_short_message() -> None:
    stored_definition()
    before = snapshot()
    stage = {"duration_s": 1, "target": 1}
    with pytest.raises(documents.DocumentInvalid) as refused:
        documents.apply_document(document(stages=[stage] * MILLION))
    text = documents.problems_text(refused.value)
    assert f"at most {MAX_STAGES} stages (MAX_STAGES)" in text
    assert len(text) < SHORT
    assert snapshot() == before


def test_the_engine_refuses_a_million_steps_and_stages_by_their_counts_alone() -> None:
    config = EngineConfig(
        target_base_url=TARGET,
        steps=(Step(name="s", method="GET", path="/"),) * MILLION,
        load_model="closed",
        users=1,
        duration_s=MILLION,
        stages=(Stage(duration_s=1, target=1),) * MILLION,
    )
    assert [name for name, _ in config.validate()] == ["steps", "stages"]


def test_loadtest_import_refuses_a_file_over_the_document_limit_before_reading_it(
    tmp_path: Path,
) -> None:
    stored_definition()
    before = snapshot()
    text = json.dumps(document(steps=steps(MILLION // 10)))
    status, output = import_file(tmp_path / "big.json", text)
    assert status == 1
    assert f"at most {MAX_DOCUMENT_BYTES} bytes" in output and "MAX_DOCUMENT_BYTES" in output
    assert len(output) < SHORT
    assert snapshot() == before


def test_20000_steps_through_the_api_are_refused_naming_the_limit(token: str) -> None:
    before = snapshot()
    body = json.dumps(document(steps=steps(20_000)), separators=(",", ":"))
    assert len(body) < MAX_DOCUMENT_BYTES  # the count is refused, not the size
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, body)
    assert status == 400
    assert answer == {"errors": {"steps": [f"20000 steps given. A load test has at most "
                                           f"{MAX_STEPS} steps (MAX_STEPS)."]}}  # fmt: skip
    assert snapshot() == before


def test_a_10_mb_header_value_is_refused_by_the_body_limit(token: str) -> None:
    before = snapshot()
    step = {**before["steps"][0], "headers": {"X-Big": "x" * (10 * 1024 * 1024)}}
    body = json.dumps(document(steps=[step]))
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, body)
    assert status == 400
    assert "MAX_DOCUMENT_BYTES" in answer["errors"]["body"][0]
    assert snapshot() == before


def test_a_header_value_over_its_limit_is_refused_naming_the_limit(token: str) -> None:
    before = snapshot()
    step = {**before["steps"][0], "headers": {"X-Big": "x" * (MAX_HEADER_VALUE_BYTES + 1)}}
    status, answer = send(
        "PUT", "/api/v1/definitions/smoke/", token, json.dumps(document(steps=[step]))
    )
    assert status == 400
    assert "MAX_HEADER_VALUE_BYTES" in " ".join(answer["errors"]["steps[0].headers"])
    assert snapshot() == before


def test_more_headers_than_the_limit_are_refused(token: str) -> None:
    before = snapshot()
    headers = {f"X-H{index}": "1" for index in range(MAX_HEADERS + 1)}
    step = {**before["steps"][0], "headers": headers}
    status, answer = send(
        "PUT", "/api/v1/definitions/smoke/", token, json.dumps(document(steps=[step]))
    )
    assert status == 400
    assert f"at most {MAX_HEADERS} headers (MAX_HEADERS)" in answer["errors"]["steps[0].headers"][0]
    assert snapshot() == before


def test_an_error_lists_a_few_problems_and_says_how_many_more(token: str) -> None:
    before = snapshot()
    bad = [{"name": f"s{i}", "method": "GET", "path": "no-slash"} for i in range(MAX_STEPS)]
    status, answer = send(
        "PUT", "/api/v1/definitions/smoke/", token, json.dumps(document(steps=bad))
    )
    assert status == 400
    errors = answer["errors"]
    assert sum(len(messages) for messages in errors.values()) == MAX_PROBLEMS_SHOWN + 1
    assert errors["(more)"] == [f"{MAX_STEPS - MAX_PROBLEMS_SHOWN} more problem(s) not shown; "
                                "fix these first."]  # fmt: skip
    assert len(json.dumps(answer)) < 2000
    assert snapshot() == before


def test_the_admin_refuses_more_step_forms_than_the_limit_at_the_count(
    admin_client: Any,
) -> None:
    data = admin_form(TARGET, **{"steps-TOTAL_FORMS": str(MILLION)})
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    errors = [
        str(formset.non_form_errors()) for formset in response.context["inline_admin_formsets"]
    ]
    assert any(f"at most {MAX_STEPS} steps (MAX_STEPS)" in text for text in errors)
    assert not LoadTestDefinition.objects.filter(name="checkout").exists()


def test_the_admin_refuses_more_stages_than_the_limit(admin_client: Any) -> None:
    data = admin_form(TARGET, **{"stages-TOTAL_FORMS": str(MAX_STAGES + 1)})
    for index in range(MAX_STAGES + 1):
        data[f"stages-{index}-order"] = str(index)
        data[f"stages-{index}-duration_s"] = "0.1"
        data[f"stages-{index}-target"] = "1"
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    errors = [
        str(formset.non_form_errors()) for formset in response.context["inline_admin_formsets"]
    ]
    assert any(f"at most {MAX_STAGES} stages (MAX_STAGES)" in text for text in errors)
    assert not LoadTestDefinition.objects.filter(name="checkout").exists()


def test_a_data_set_over_the_row_limit_is_refused_naming_the_limit() -> None:
    data = b"id\n" + b"1\n" * (MAX_DATA_ROWS + 1)
    with pytest.raises(
        datasets.DataSetInvalid, match=f"at most {MAX_DATA_ROWS} \\(MAX_DATA_ROWS\\)"
    ):
        datasets.parse(data, max_mb=10)


def test_a_step_body_over_its_limit_is_refused_naming_the_limit(token: str) -> None:
    before = snapshot()
    step = {**before["steps"][0], "method": "POST", "body": "x" * (MAX_STEP_BODY_BYTES + 1)}
    body = json.dumps(document(steps=[step]))
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, body)
    assert status == 400
    assert "(MAX_STEP_BODY_BYTES)" in answer["errors"]["steps[0].body"][0]
    assert snapshot() == before


def test_loadtest_url_refuses_a_body_file_over_the_limit_before_reading_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b"x" * (MAX_STEP_BODY_BYTES + 1))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "loadtest", "url", f"{TARGET}/ok", "--rate", "1", "--duration", "1",
            "--data-file", str(path), stdout=out, stderr=err,
        )  # fmt: skip
    assert refused.value.returncode == 2
    assert f"at most {MAX_STEP_BODY_BYTES} bytes (MAX_STEP_BODY_BYTES)" in str(refused.value)
    assert not LoadTestRun.objects.exists()


def test_the_document_schema_states_the_engine_limits() -> None:
    schema = json.loads(documents.SCHEMA_PATH.read_text())["properties"]
    headers = schema["steps"]["items"]["properties"]["headers"]
    assert (schema["steps"]["maxItems"], schema["stages"]["maxItems"]) == (MAX_STEPS, MAX_STAGES)
    assert headers["maxProperties"] == MAX_HEADERS
    assert headers["propertyNames"]["maxLength"] == MAX_HEADER_NAME_BYTES
    assert headers["additionalProperties"]["maxLength"] == MAX_HEADER_VALUE_BYTES


def test_an_error_quotes_at_most_a_little_of_the_input(token: str) -> None:
    long_name = "x" * 500_000
    body = json.dumps(document(name=long_name))
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, body)
    assert status == 400 and "rename in the admin" in answer["errors"]["name"][0]
    assert len(json.dumps(answer)) < SHORT
    status, answer = send("POST", "/api/v1/runs/", token, json.dumps({"definition": long_name}))
    assert status == 400 and "There is no definition named" in answer["errors"]["definition"][0]
    assert len(json.dumps(answer)) < SHORT
