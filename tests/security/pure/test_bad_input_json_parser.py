"""The one JSON parser for documents and API bodies (loadtests.engine.jsoninput): what it
refuses, by path and rule, and what it still accepts. Pure: no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.engine import __main__ as engine_cli
from loadtests.engine.config import MAX_JSON_DEPTH
from loadtests.engine.extract import ExtractionFailed, make_extractor
from loadtests.engine.http import check_json
from loadtests.engine.jsoninput import JsonInputInvalid, parse


def refusal(text: str | bytes, **limits: int) -> list[tuple[str, str]]:
    with pytest.raises(JsonInputInvalid) as refused:
        parse(text, **limits)
    return refused.value.problems


@pytest.mark.parametrize(
    ("text", "path", "rule"),
    [
        ('{"a": {"b": [1, -Infinity]}}', "a.b[1]", "finite"),
        ('{"a": 1e400}', "a", "finite"),
        ('{"a": -1e400}', "a", "finite"),
        ("NaN", "(document)", "finite"),
        ('{"steps": [{"name": "\\u0000"}]}', "steps[0].name", "NUL"),
        ('{"\\ud800": 1}', "\\ud800", "lone surrogate"),
        ('["\\udc00x"]', "[0]", "lone surrogate"),
        ('{"a": 1', "(document)", "Send valid JSON"),
        ("1" * 5000, "(document)", "Send valid JSON"),
        (b"\xff{}", "(document)", "UTF-8"),
    ],
)
def test_it_refuses_what_nothing_can_store_naming_the_path(
    text: str | bytes, path: str, rule: str
) -> None:
    ((where, message),) = refusal(text)
    assert where == path and rule in message


def test_it_refuses_nesting_deeper_than_the_limit_before_parsing() -> None:
    parse("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    for text in ("[" * (MAX_JSON_DEPTH + 1), "[" * 400_000 + "]" * 400_000):
        ((where, message),) = refusal(text)
        assert where == "(document)" and "MAX_JSON_DEPTH" in message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a": "' + "[{" * 100 + '\\"]"}'
    assert parse(text) == {"a": "[{" * 100 + '"]'}


def test_it_keeps_valid_unicode_and_big_finite_numbers() -> None:
    value = parse('{"emoji": "\\ud83d\\ude00", "n": 1.7e308, "i": 12345678901234567890}')
    assert value == {"emoji": "😀", "n": 1.7e308, "i": 12345678901234567890}


def test_it_refuses_a_text_over_the_size_limit_before_decoding_it() -> None:
    ((where, message),) = refusal(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    assert where == "(document)" and "at most 1000 bytes" in message


def test_it_lists_a_few_problems_and_says_how_many_more() -> None:
    problems = refusal("[" + ", ".join(["NaN"] * 50) + "]")
    assert len(problems) == 11 and problems[-1] == (
        "(more)",
        "40 more problem(s) not shown; fix these first.",
    )


def test_the_engine_cli_refuses_an_infinite_document_value_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"target_base_url": "http://127.0.0.1:1", "duration_s": Infinity}')
    assert engine_cli.main(["--document", str(path)]) == 2
    assert "duration_s: Numbers must be finite" in capsys.readouterr().err


def test_a_target_answering_json_100k_deep_fails_the_check_or_extraction_not_the_run() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert check_json(body, ["a"], 1) == "the body is not JSON (wanted a)"
    with pytest.raises(ExtractionFailed, match="the body is not JSON"):
        make_extractor("json", "$.a")([], body, {})
