"""What a tagged request's queries leave in its measure: counts and time by SQL text, and the app's
frame of each N+1 group, whether its statement repeats with parameters or with inline values.
Pure: no Django, no Redis."""

from __future__ import annotations

from typing import Any

import pytest
from offgridperf_agent.aggregate import RequestFigures, fingerprint
from offgridperf_agent.measure import RequestMeasure

BY_ID = 'SELECT "shop_author"."name" FROM "shop_author" WHERE "shop_author"."id" = %s'


def run(execute: Any, sql: Any) -> Any:
    """Django's part: the wrapper is handed the next executor and the statement."""
    return execute(lambda *args: "rows", sql, (1,), False, {})


def figures_of(measure: RequestMeasure) -> dict[str, list[Any]]:
    return RequestFigures(0, 0, 0, 0, "", 200, measure.statements, measure.frames).by_fingerprint()


def test_a_statement_run_again_with_parameters_is_one_n_plus_one_group_with_the_apps_frame() -> (
    None
):
    measure = RequestMeasure()
    run(measure.execute, 'SELECT "shop_book"."id" FROM "shop_book"')
    for _ in range(20):
        run(measure.execute, BY_ID)
    folded = figures_of(measure)
    count, _, sample, frame = folded[fingerprint(BY_ID)]
    assert (count, sample) == (20, BY_ID)
    assert frame.startswith(f"{__name__}.run:")
    assert sum(entry[0] for entry in folded.values()) == 21


def test_a_statement_repeated_with_inline_values_is_one_group_too() -> None:
    measure = RequestMeasure()
    for author_id in range(7):
        run(measure.execute, f"SELECT name FROM author WHERE id = {author_id}")  # noqa: S608
    [(count, _, _, frame)] = figures_of(measure).values()
    assert count == 7
    assert frame.startswith(f"{__name__}.run:")


def test_four_repeats_are_not_an_n_plus_one_and_look_up_no_frame() -> None:
    measure = RequestMeasure()
    for _ in range(4):
        run(measure.execute, BY_ID)
    assert measure.frames == {}


class Composed:
    """Like psycopg's sql.Composed: a statement that is not a str, and not hashable."""

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "SELECT 1"


def test_a_statement_that_is_not_a_string_is_counted_by_its_text() -> None:
    measure = RequestMeasure()
    run(measure.execute, Composed())
    run(measure.execute, Composed())
    assert measure.statements["SELECT 1"][0] == 2


def test_a_query_that_fails_is_still_counted_and_its_error_goes_through() -> None:
    measure = RequestMeasure()

    def failing(*args: Any) -> Any:
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        measure.execute(failing, BY_ID, (1,), False, {})
    assert measure.statements[BY_ID][0] == 1
