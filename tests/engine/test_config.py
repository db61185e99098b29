from __future__ import annotations

import json

import pytest

from loadtests.engine import ConfigError, EngineConfig, Stage, Step, run
from tests.engine.helpers import closed, open_, step


def fields_of(config: EngineConfig) -> dict[str, str]:
    return dict(config.validate())


def test_a_good_config_has_no_problems() -> None:
    assert closed("http://127.0.0.1:8000").validate() == []
    assert open_("https://example.test/api", rate=0.5).validate() == []


def test_validation_names_every_bad_field() -> None:
    config = EngineConfig(
        base_url="ftp://x",
        steps=(
            Step(name="a", method="FETCH", path="ok", weight=0, expect_status=(700,)),
            Step(name="a", method="GET", path="/x y", headers={"Host": "evil"}),
        ),
        model="closed",
        users=0,
        think_min_s=2,
        think_max_s=1,
        duration_s=-1,
        timeout_s=0,
        max_connections=0,
        abort_error_rate_pct=150,
        tick_s=0,
    )
    problems = fields_of(config)
    for field in (
        "base_url", "users", "think_max_s", "duration_s", "timeout_s", "max_connections",
        "abort_error_rate_pct", "tick_s", "steps[0].method", "steps[0].path", "steps[0].weight",
        "steps[0].expect_status", "steps[1].name", "steps[1].path", "steps[1].headers",
    ):  # fmt: skip
        assert field in problems, field
    assert "http://" in problems["base_url"]
    assert "Host" in problems["steps[1].headers"]


def test_the_open_model_needs_a_rate_and_no_think_time() -> None:
    problems = fields_of(open_("http://127.0.0.1:1", rate=0, think_max_s=1.0))
    assert "rate" in problems and "think_min_s" in problems
    assert "model" in fields_of(open_("http://127.0.0.1:1", model="sideways"))


def test_stages_must_add_up_to_the_duration() -> None:
    config = closed("http://127.0.0.1:1", stages=(Stage(2, 5), Stage(1, 0)), duration_s=5)
    assert "must be equal" in fields_of(config)["stages"]
    assert (
        closed("http://127.0.0.1:1", stages=(Stage(2, 5), Stage(1, 0)), duration_s=3).validate()
        == []
    )
    bad = closed("http://127.0.0.1:1", stages=(Stage(0, 5), Stage(1, -1)), duration_s=1)
    assert {"stages[0].duration_s", "stages[1].target"} <= set(fields_of(bad))


def test_a_config_round_trips_through_json() -> None:
    config = closed(
        "http://127.0.0.1:8000",
        step("/json", check_json_field="data.id", check_json_value={"a": [1, 2]}, weight=3),
        step(
            "/echo",
            method="POST",
            body='{"x": 1}',
            headers={"X-Token": "t"},
            expect_status=(200, 201),
        ),
        stages=(Stage(1, 5), Stage(2, 5)),
        duration_s=3,
        think_min_s=0.1,
        think_max_s=0.2,
        abort_error_rate_pct=None,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert EngineConfig.from_dict(data) == config


def test_run_refuses_a_config_that_does_not_validate() -> None:
    with pytest.raises(ConfigError) as caught:
        run(closed("http://127.0.0.1:1", users=-1))
    assert ("users", "The closed model needs 1 to 10000 users.") in caught.value.problems
