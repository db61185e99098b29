from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from emissions.cache import ACTIVITY, QUERY
from offgridperf import cache

# Values chosen to collide under any hand-made join: separators of every kind, the layer's own
# suffix, percent signs that look like escapes, unicode, empties and look-alike types.
AWKWARD_TEXT = [
    "",
    " ",
    "a",
    "A",
    "a&b",
    "a=b",
    "a&b=c",
    "=",
    "&",
    "%",
    "%26",
    "%3D",
    "%7E",
    ":",
    "1:",
    ":~lock",
    "~",
    "*",
    "#1",
    "!True",
    "$1",
    "@2024-12-01",
    "2024-12-01",
    "1",
    "01",
    "é",
    "e\u0301",  # the same letter, decomposed: a different string, so a different key
    "٣",
    "²",
    "日本",
    "\x00",
    "\n",
    "a" * 200,
    "a" * 201,
]
AWKWARD_VALUES: list[cache.KeyValue] = [
    *AWKWARD_TEXT,
    None,
    0,
    1,
    -1,
    12,
    True,
    False,
    Decimal("1"),
    Decimal("1.0"),
    date(2024, 12, 1),
    datetime(2024, 12, 1),
]
NAMES = ["a", "b", "ab", "a&b", "a=b", "page", "page_size", "category", "date_from", "é", "~"]


def random_params(rng: random.Random) -> dict[str, cache.KeyValue]:
    names = rng.sample(NAMES, rng.randint(0, 4))
    return {name: rng.choice(AWKWARD_VALUES) for name in names}


def canonical(parts: tuple[Any, ...], params: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two parameter sets distinct: parts as text, params with their types."""
    return (
        tuple(str(part) for part in parts),
        frozenset((name, type(value), value) for name, value in params.items()),
    )


def generated_cases(count: int, seed: int = 20240801) -> Iterator[tuple[tuple[Any, ...], dict]]:
    rng = random.Random(seed)
    for _ in range(count):
        parts = tuple(rng.choice([*AWKWARD_TEXT, 1, 12, "all"]) for _ in range(rng.randint(0, 3)))
        yield parts, random_params(rng)


def test_it_gives_no_two_distinct_parameter_sets_the_same_key() -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    cases = list(generated_cases(20_000))
    # Every pair of awkward values under one and under two names, exhaustively.
    cases += [((), {"a": value}) for value in AWKWARD_VALUES]
    cases += [
        ((), {"a": first, "b": second})
        for first, second in itertools.product(AWKWARD_VALUES, repeat=2)
    ]
    cases += [((first, second), {}) for first, second in itertools.product(AWKWARD_TEXT, repeat=2)]
    for parts, params in cases:
        made = cache.key(*parts, **params)
        identity = canonical(parts, params)
        assert seen.setdefault(made, identity) == identity, (made, parts, params)


def test_it_gives_the_same_parameters_the_same_key_in_any_order() -> None:
    for parts, params in generated_cases(2_000, seed=7):
        shuffled = list(params.items())
        random.Random(1).shuffle(shuffled)
        assert cache.key(*parts, **dict(shuffled)) == cache.key(*parts, **params)


def test_it_tells_none_empty_text_and_types_apart() -> None:
    keys = {cache.key(v=value) for value in (None, "", 1, "1", True, Decimal(1), "True")}
    assert len(keys) == 7
    assert cache.key("1", "2") != cache.key("1:2")
    assert cache.key(a="b&c=d") != cache.key(a="b", c="d")


def test_it_bounds_the_length_of_every_key() -> None:
    bound = 3 * (cache.KEY_PART_MAX + 1) + cache.KEY_PARAMS_MAX + 1
    for parts, params in generated_cases(5_000, seed=3):
        made = cache.key(*parts[:3], **params)
        assert len(made) <= bound
        assert made.isascii() and made.isprintable() and " " not in made


def test_it_refuses_values_it_cannot_encode_unambiguously() -> None:
    with pytest.raises(TypeError):
        cache.key(a=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        cache.key(**{"": 1})


def test_it_gives_a_batch_a_prefix_that_no_other_batch_shares() -> None:
    for first, second in itertools.permutations([1, 12, 123, 2, 21, "1", "all"], 2):
        if str(first) == str(second):
            continue
        assert cache.key(first, page=1, page_size=50).startswith(cache.key(first))
        assert not cache.key(second, page=1, page_size=50).startswith(cache.key(first))


@pytest.fixture
def clean_cache() -> Iterator[None]:
    cache.clear_all()
    yield
    cache.reset_process_state()


@pytest.mark.usefixtures("clean_cache")
def test_it_invalidates_exactly_one_batch_by_its_prefix() -> None:
    for batch_id in (1, 12, 2):
        ACTIVITY.set_many(
            {cache.key(batch_id, page=page, page_size=50): batch_id for page in range(1, 31)}
        )
    assert ACTIVITY.invalidate_prefix(cache.key(1)) == 30
    assert ACTIVITY.get(cache.key(1, page=1, page_size=50)) is None
    assert ACTIVITY.get(cache.key(12, page=1, page_size=50)) == 12
    assert ACTIVITY.get(cache.key(2, page=30, page_size=50)) == 2
    # The prefix spelled by hand, as before keys were encoded, names the same keys.
    assert ACTIVITY.invalidate_prefix("12:") == 30
    assert cache.key_counts()["activity"] == 30


@pytest.mark.usefixtures("clean_cache")
def test_it_stores_and_finds_values_under_awkward_keys() -> None:
    values = {cache.key("q", v=value): n for n, value in enumerate(AWKWARD_VALUES)}
    assert QUERY.set_many(values)
    assert QUERY.get_many(values) == values
    assert QUERY.invalidate_prefix(cache.key("q")) == len(values)
