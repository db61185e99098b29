from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest

from loadtests.engine.templates import Context, TemplateError, compile_template


def render(text: str, context: Context | None = None, **options: object) -> str:
    return compile_template(text, **options).render(context or Context())  # type: ignore[arg-type]


def error_of(text: str, **options: object) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        compile_template(text, **options)  # type: ignore[arg-type]
    return caught.value


def test_it_leaves_text_without_templates_as_it_is() -> None:
    template = compile_template('{"a": {"b": 1}}')
    assert template.static
    assert template.render(Context()) == '{"a": {"b": 1}}'


def test_it_renders_variables_extracted_earlier() -> None:
    context = Context(variables={"batch_id": "42"})
    assert render("/api/batches/{{ batch_id }}/", context, variables=("batch_id",)) == (
        "/api/batches/42/"
    )
    assert render("{{batch_id}}-{{  batch_id  }}", context, variables=("batch_id",)) == "42-42"


def test_it_renders_iteration_and_user() -> None:
    assert render("u{{ user }} i{{ iteration }}", Context(iteration=7, user=3)) == "u3 i7"


def test_it_renders_a_row_column() -> None:
    context = Context(row={"email": "a@example.test", "site-id": "9"})
    text = "{{ row.email }}/{{ row.site-id }}"
    assert render(text, context, columns=("email", "site-id")) == "a@example.test/9"


def test_it_draws_random_ints_within_the_bounds() -> None:
    template = compile_template("{{ random_int(1, 3) }}")
    values = {template.render(Context()) for _ in range(200)}
    assert values == {"1", "2", "3"}
    assert compile_template("{{ random_int(-2, -2) }}").render(Context()) == "-2"


def test_it_chooses_among_bare_words_and_quoted_strings() -> None:
    template = compile_template("{{ random_choice(a, \"b c\", 'd,e') }}")
    values = {template.render(Context()) for _ in range(300)}
    assert values == {"a", "b c", "d,e"}


def test_it_makes_uuids_and_timestamps() -> None:
    value = render("{{ uuid() }}")
    assert uuid.UUID(value).version == 4
    assert render("{{ uuid() }}") != value
    stamp = render("{{ now_iso() }}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).year >= 2024


def test_it_lists_the_variables_a_template_uses() -> None:
    template = compile_template(
        "/{{ a }}/{{ row.x }}/{{ b }}", variables=("a", "b"), columns=("x",)
    )
    assert template.variables == ("a", "b")


@pytest.mark.parametrize(
    ("text", "options", "message", "position"),
    [
        ("/x/{{ batchid }}", {"variables": ("batch_id",)}, "unknown variable 'batchid'", 7),
        ("/{{ b }}", {"variables": None}, "unknown variable 'b'", 5),
        ("/{{ random_number(1) }}", {}, "unknown function 'random_number'", 5),
        ("/{{ uuid }}", {}, "uuid is a function", 5),
        ("/{{ row.email }}", {}, "row.email needs a data set", 5),
        ("/{{ row.mail }}", {"columns": ("email",)}, "the data set has no column 'mail'", 9),
        ("/{{ row }}", {"columns": ("email",)}, "'row' needs a column", 5),
        ("/{{ x", {}, "'{{' is never closed", 2),
        ("/{{ }}", {}, "empty '{{ }}'", 2),
        ("/{{ 9lives }}", {}, "expected a name", 5),
        ("/{{ user user }}", {}, "unexpected 'u'", 10),
        ("/{{ random_int(1) }}", {}, "random_int needs two whole numbers", 5),
        ("/{{ random_int(1, x) }}", {}, "random_int takes whole numbers, not 'x'", 19),
        ("/{{ random_int(5, 1) }}", {}, "lower bound 5 is above its upper 1", 5),
        ("/{{ random_choice() }}", {}, "random_choice needs at least one argument", 5),
        ("/{{ random_choice(a b) }}", {}, "expected ',' or ')'", 21),
        ("/{{ random_choice('a) }}", {}, "unterminated string", 19),
        ("/{{ uuid(1) }}", {}, "uuid() takes no arguments", 10),
        ("/{{ id }}", {"variables": (), "later": {"id": "create"}},
         "variable 'id' is used before step 'create' extracts it", 5),
    ],
)  # fmt: skip
def test_it_rejects_mistakes_with_their_position(
    text: str, options: dict[str, object], message: str, position: int
) -> None:
    error = error_of(text, **options)
    assert message in error.message
    assert error.position == position
    assert f"at character {position}" in str(error)


def test_an_unknown_variable_names_those_defined_before() -> None:
    error = error_of("/api/batches/{{ batchid }}/", variables=("batch_id", "token"))
    assert str(error) == (
        "unknown variable 'batchid' at character 17 (defined before this step: batch_id, token)"
    )
