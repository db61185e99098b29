"""Input that nothing downstream can hold (Infinity, 1e400, NaN, nesting 5,000 or 100,000
deep, NUL characters, lone surrogates, bodies over the size limit) is refused with a clear
error naming the field and the rule: a JSON 400 on the API, one line from `loadtest import`,
a 400 or a form error on pages. Nothing stored changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from loadtests.engine.config import MAX_DOCUMENT_BYTES
from loadtests.models import DataSet, LoadTestDefinition, LoadTestRun, Tag
from tests.loadtests.admin_forms import ADD, admin_form
from tests.security.bad_input_support import (
    TARGET,
    document_text,
    import_file,
    send,
    snapshot,
    stored_definition,
    token_for,
)

pytestmark = pytest.mark.django_db

FINITE = "Numbers must be finite"
DEEP = "at most 32 levels deep (MAX_JSON_DEPTH)"


@pytest.fixture
def token(admin_user: Any) -> str:
    stored_definition()
    return token_for(admin_user)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# -- loadtest import ---------------------------------------------------------------------------


def test_loadtest_import_refuses_an_infinite_duration_in_one_line_naming_the_field(
    tmp_path: Path,
) -> None:
    definition = stored_definition()
    before = snapshot()
    text = document_text(definition).replace('"duration_s": 2', '"duration_s": Infinity')
    status, output = import_file(tmp_path / "smoke.json", text)
    assert status == 1
    line = output.strip().splitlines()[0]
    assert "not imported" in line and "duration_s" in line and FINITE in line
    assert snapshot() == before


def test_loadtest_import_refuses_json_5000_deep_without_a_recursion_error(
    tmp_path: Path,
) -> None:
    status, output = import_file(tmp_path / "deep.json", deep(5000))
    assert status == 1
    assert DEEP in output and "(file)" in output
    assert len(output) < 500


# -- POST /api/v1/runs/ ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ('{"definition": "smoke", "duration_s": Infinity}', "duration_s", FINITE),
        ('{"definition": "smoke", "duration_s": 1e400}', "duration_s", FINITE),
        ('{"definition": "smoke", "users": NaN}', "users", FINITE),
        (deep(100_000), "body", DEEP),
        ('{"definition": "smoke", "x": ' + '{"x": ' * 40 + "1" + "}" * 41, "body", DEEP),
    ],
    ids=["infinity", "1e400", "nan", "100k-deep", "deep-object"],
)
def test_starting_a_run_refuses_bad_json_with_a_json_400_naming_the_field(
    token: str, body: str, field: str, rule: str
) -> None:
    status, answer = send("POST", "/api/v1/runs/", token, body)
    assert status == 400
    assert rule in " ".join(answer["errors"][field])
    assert not LoadTestRun.objects.exists()


# -- PUT /api/v1/definitions/... ---------------------------------------------------------------


def _put_cases() -> list[Any]:
    return [
        pytest.param('"duration_s": 2', '"duration_s": Infinity', "duration_s", FINITE,
                     id="infinite-duration"),
        pytest.param('"weight": 3', '"weight": 1e400', "steps[0].weight", FINITE,
                     id="weight-1e400"),
        pytest.param('"name": "ok"', '"name": "o\\u0000k"', "steps[0].name", "NUL",
                     id="nul-in-a-step-name"),
        pytest.param('"description": ""', '"description": "\\ud800"', "description",
                     "lone surrogate", id="lone-surrogate"),
        pytest.param('"headers": {}', '"headers": {"X-\\u0000": "1"}', "steps[0].headers.X-\\x00",
                     "NUL", id="nul-in-a-key"),
        pytest.param('"headers": {}', '"headers": {"X-A": "\\udfff"}', "steps[0].headers.X-A",
                     "lone surrogate", id="lone-low-surrogate"),
    ]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "field", "rule"), _put_cases())
def test_writing_a_definition_refuses_bad_values_and_keeps_the_stored_one(
    token: str, old: str, new: str, field: str, rule: str
) -> None:
    before = snapshot()
    text = json.dumps(before)
    assert old in text
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, text.replace(old, new, 1))
    assert status == 400, answer
    assert rule in " ".join(answer["errors"][field])
    assert snapshot() == before


def test_an_api_body_over_the_size_limit_gets_a_json_400_naming_the_limit(token: str) -> None:
    before = snapshot()
    body = json.dumps({**before, "description": "x" * (3 * 1024 * 1024)})
    status, answer = send("PUT", "/api/v1/definitions/smoke/", token, body)
    assert status == 400
    (message,) = answer["errors"]["body"]
    assert f"at most {MAX_DOCUMENT_BYTES} bytes" in message and "MAX_DOCUMENT_BYTES" in message
    assert snapshot() == before


def test_a_nul_in_an_api_path_is_a_json_400(token: str) -> None:
    status, answer = send("PUT", "/api/v1/definitions/a%00b/", token, "{}")
    assert status == 400
    assert "NUL" in answer["errors"]["The path"][0]


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/loadtests/loadtestrun/?status__exact=%00",
        "/admin/loadtests/loadtestdefinition/?q=a%00",
        "/admin/loadtests/loadtestrun/?definition__id__exact=1%00",
    ],
    ids=["admin-filter", "admin-search", "admin-id-filter"],
)
def test_a_nul_in_a_query_string_is_a_400_naming_the_parameter(admin_client: Any, url: str) -> None:
    response = admin_client.get(url)
    assert response.status_code == 400
    text = response.content.decode()
    assert "NUL" in text and "The query parameter" in text


def test_a_nul_in_a_form_field_is_a_form_error_and_stores_nothing(admin_client: Any) -> None:
    response = admin_client.post("/admin/loadtests/tag/add/", {"name": "smoke\x00"})
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert not Tag.objects.exists()


def test_a_data_set_holding_a_nul_byte_is_refused_with_a_form_error(admin_client: Any) -> None:
    file = SimpleUploadedFile("c.csv", b"email,name\na@example.com,A\x00nn\n", "text/csv")
    response = admin_client.post(
        "/admin/loadtests/dataset/add/", {"name": "customers", "description": "", "file": file}
    )
    assert response.status_code == 200
    errors = " ".join(" ".join(m) for m in response.context["adminform"].form.errors.values())
    assert "Line 2 contains a NUL character" in errors
    assert not DataSet.objects.exists()


@pytest.mark.parametrize(
    ("field", "text", "rule"),
    [
        ("headers", '{"X-A": Infinity}', FINITE),
        ("headers", '{"X-A": "\\ud800"}', "lone surrogate"),
        ("headers", deep(5000), DEEP),
        ("secret_headers", '["X-\\u0000"]', "NUL"),
        ("secret_headers", '["\\ud800"]', "lone surrogate"),
        ("secret_headers", deep(5000), DEEP),
    ],
    ids=["infinity", "surrogate", "5000-deep", "nul", "surrogate-name", "5000-deep-names"],
)
def test_the_admin_refuses_bad_json_in_a_step_with_a_form_error(
    admin_client: Any, field: str, text: str, rule: str
) -> None:
    response = admin_client.post(ADD, admin_form(TARGET, **{f"steps-0-{field}": text}))
    assert response.status_code == 200
    (steps,) = [f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "steps"]
    assert rule in " ".join(steps.formset.forms[0].errors[field])
    assert not LoadTestDefinition.objects.exists()
