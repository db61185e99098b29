from __future__ import annotations

import json

import pytest

from loadtests.engine import ConfigError, EngineConfig, Stage, Step, run
from tests.engine.helpers import closed, open_, step


def fields_of(config: EngineConfig) -> dict[str, str]:
    return dict(config.validate())


def test_a_good_config_has_no_problems() -> None:
    assert closed("http://127.0.0.1:8000").validate() == []
    assert open_("https://example.test/api", rate_rps=0.5).validate() == []


def test_validation_names_every_bad_field() -> None:
    config = EngineConfig(
        target_base_url="ftp://x",
        steps=(
            Step(name="a", method="FETCH", path="ok", weight=0, expected_statuses=(700,)),
            Step(name="a", method="GET", path="/x y", headers={"Host": "evil"}),
        ),
        load_model="closed",
        users=0,
        think_time_min_s=2,
        think_time_max_s=1,
        duration_s=-1,
        timeout_s=0,
        max_connections=0,
        abort_error_rate_pct=150,
        tick_s=0,
    )
    problems = fields_of(config)
    for field in (
        "target_base_url", "users", "think_time_max_s", "duration_s", "timeout_s",
        "max_connections", "abort_error_rate_pct", "tick_s", "steps[0].method",
        "steps[0].path", "steps[0].weight",
        "steps[0].expected_statuses", "steps[1].name", "steps[1].path", "steps[1].headers",
    ):  # fmt: skip
        assert field in problems, field
    assert "http://" in problems["target_base_url"]
    assert "Host" in problems["steps[1].headers"]


def test_the_open_model_needs_a_rate_and_no_think_time() -> None:
    problems = fields_of(open_("http://127.0.0.1:1", rate_rps=0, think_time_max_s=1.0))
    assert "rate_rps" in problems and "think_time_min_s" in problems
    assert "load_model" in fields_of(open_("http://127.0.0.1:1", load_model="sideways"))


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
            expected_statuses=(200, 201),
        ),
        stages=(Stage(1, 5), Stage(2, 5)),
        duration_s=3,
        think_time_min_s=0.1,
        think_time_max_s=0.2,
        abort_error_rate_pct=None,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert EngineConfig.from_dict(data) == config


def test_run_refuses_a_config_that_does_not_validate() -> None:
    with pytest.raises(ConfigError) as caught:
        run(closed("http://127.0.0.1:1", users=-1))
    assert ("users", "The closed model needs 1 to 10000 users.") in caught.value.problems


@pytest.mark.parametrize(
    "name", ["X\tToken", "X(Token)", "X-Token\n", "X Token", "", "Größe", "X:Token"]
)
def test_it_refuses_header_names_outside_the_token_characters(name: str) -> None:
    problems = fields_of(closed("http://127.0.0.1:1", step(headers={name: "1"})))
    assert "not a valid header name" in problems["steps[0].headers"]


@pytest.mark.parametrize(
    ("value", "rule"),
    [("a\0b", "control"), ("a\r\nX: y", "control"), ("a\x7f", "control"), ("Zoë ✓", "Latin-1")],
)
def test_it_refuses_header_values_that_http_cannot_carry(value: str, rule: str) -> None:
    problems = fields_of(closed("http://127.0.0.1:1", step(headers={"X-Token": value})))
    assert rule in problems["steps[0].headers"]


def test_it_accepts_latin_1_header_values_with_tabs() -> None:
    assert closed("http://127.0.0.1:1", step(headers={"X-Name": "Zoë\tB"})).validate() == []


@pytest.mark.parametrize("path", ["/a b", "/a\tb", "/a\x01b", "/a\x7f", "/café", "ok"])
def test_it_refuses_paths_that_would_corrupt_the_request_line(path: str) -> None:
    assert "steps[0].path" in fields_of(closed("http://127.0.0.1:1", step(path, name="p")))


def test_it_accepts_percent_encoded_paths() -> None:
    assert closed("http://127.0.0.1:1", step("/a%20b?q=%00&r=~", name="p")).validate() == []


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:0", "http://127.0.0.1:99999", "http://127.0.0.1:x"]
)
def test_it_refuses_ports_outside_1_to_65535(base_url: str) -> None:
    assert "port" in fields_of(closed(base_url))["target_base_url"]


def test_it_caps_stage_targets_by_the_models_own_limit() -> None:
    too_many_users = closed("http://127.0.0.1:1", stages=(Stage(1, 90_000),), duration_s=1)
    assert "0 to 10000 users" in fields_of(too_many_users)["stages[0].target"]
    too_fast = open_("http://127.0.0.1:1", stages=(Stage(1, 2_000_000),), duration_s=1)
    assert "requests/s" in fields_of(too_fast)["stages[0].target"]
    assert open_("http://127.0.0.1:1", stages=(Stage(1, 90_000),), duration_s=1).validate() == []


def test_it_refuses_stages_that_never_leave_zero() -> None:
    config = closed("http://127.0.0.1:1", stages=(Stage(1, 0), Stage(1, 0)), duration_s=2)
    assert "above 0" in fields_of(config)["stages"]
