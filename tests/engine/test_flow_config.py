"""Flow-mode configuration: validation by step, and the document round trip."""

from __future__ import annotations

from typing import Any

from loadtests.engine import EngineConfig, Extraction, Poll, Step


def config(*steps: Step, **fields: Any) -> EngineConfig:
    fields.setdefault("mode", "flow")
    return EngineConfig(
        target_base_url="http://127.0.0.1:8000", steps=steps, load_model="closed", users=1,
        duration_s=1,
        **fields,
    )  # fmt: skip


def problems(cfg: EngineConfig) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for field, message in cfg.validate():
        found.setdefault(field, []).append(message)
    return found


CREATE = Step("create", "POST", "/api/batches/", extract=(Extraction("batch_id", "json", "$.id"),))


def test_a_good_flow_has_no_problems() -> None:
    good = config(
        CREATE,
        Step(
            "wait",
            "GET",
            "/api/batches/{{ batch_id }}/?r={{ random_int(1, 9) }}",
            headers={"X-Row": "{{ row.email }}", "X-Trace": "{{ uuid() }}"},
            body='{"at": "{{ now_iso() }}", "n": {"u": {{ user }}}}',
            poll=Poll("$.status", "done", max_attempts=20, interval_s=0.5),
        ),
        data_columns=("email",),
    )
    assert good.validate() == []


def test_a_typo_names_the_step_field_and_position() -> None:
    bad = config(CREATE, Step("calc", "POST", "/api/batches/{{ batchid }}/calculate/"))
    assert problems(bad) == {
        "steps[1].path": [
            "unknown variable 'batchid' at character 17 (defined before this step: batch_id)"
        ]
    }


def test_a_variable_used_before_its_step_extracts_it_is_a_problem() -> None:
    bad = config(
        Step("early", "GET", "/x", headers={"X-Id": "{{ batch_id }}"}),
        CREATE,
        Step("z", "GET", "/"),
    )
    assert problems(bad)["steps[0].headers"] == [
        "variable 'batch_id' is used before step 'create' extracts it at character 4"
    ]
    own = config(
        Step("self", "GET", "/{{ me }}", extract=(Extraction("me", "json", "$.me"),)),
    )
    assert "used before step 'self'" in problems(own)["steps[0].path"][0]


def test_the_body_and_row_columns_are_checked() -> None:
    bad = config(Step("a", "POST", "/", body="{{ row.mail }}"), data_columns=("email",))
    assert problems(bad)["steps[0].body"] == [
        "the data set has no column 'mail' at character 8 (columns: email)"
    ]
    no_data = config(Step("a", "GET", "/{{ row.email }}"))
    assert "needs a data set" in problems(no_data)["steps[0].path"][0]


def test_requests_mode_allows_built_ins_but_no_extraction() -> None:
    fine = config(Step("a", "GET", "/?r={{ random_int(1, 2) }}&u={{ user }}"), mode="requests")
    assert fine.validate() == []
    bad = config(
        Step("a", "GET", "/{{ batch_id }}", extract=(Extraction("batch_id", "json", "$.id"),)),
        Step("b", "GET", "/", poll=Poll("$.s", "done")),
        mode="requests",
    )
    found = problems(bad)
    assert "steps[0].extract" in found and "steps[1].poll" in found
    assert "requests mode has no extracted variables" in found["steps[0].path"][0]


def test_extractions_are_checked_by_kind() -> None:
    bad = config(
        Step(
            "a",
            "GET",
            "/",
            extract=(
                Extraction("1st", "json", "$.id"),
                Extraction("user", "json", "$.id"),
                Extraction("a", "xml", "//id"),
                Extraction("b", "json", "$.items[x]"),
                Extraction("c", "regex", "no group"),
                Extraction("d", "regex", "(unclosed"),
                Extraction("e", "header", "Bad Header"),
                Extraction("f", "cookie", ""),
                Extraction("g", "header", "Location ~ no group"),
                Extraction("h", "header", "Location ~ ^/(.*)"),
            ),
        )
    )
    messages = problems(bad)["steps[0].extract"]
    assert len(messages) == 9
    assert "'1st' must be a name" in messages[0]
    assert "'user' is a built-in name" in messages[1]
    assert "'from' must be one of json, header, regex, cookie" in messages[2]
    assert "Not a JSON path" in messages[3]
    assert "exactly one group (it has 0)" in messages[4]
    assert "does not compile" in messages[5]
    assert "Not a header name" in messages[6]
    assert "Give an expression" in messages[7]
    assert "(g): The regular expression needs exactly one group" in messages[8]


def test_poll_ranges_are_checked() -> None:
    for poll in (Poll("$.s", "done", max_attempts=0), Poll("$.s", "x", interval_s=61)):
        assert problems(config(Step("a", "GET", "/", poll=poll)))["steps[0].poll"] == [
            "A poll makes 1 to 1000 attempts, 0 to 60 s apart."
        ]
    assert (
        "JSON path"
        in problems(config(Step("a", "GET", "/", poll=Poll("$..", "x"))))["steps[0].poll"][0]
    )


def test_mode_and_data_order_are_checked() -> None:
    assert "mode" in problems(config(Step("a", "GET", "/"), mode="journey"))
    assert "data_order" in problems(config(Step("a", "GET", "/"), data_order="shuffled"))


def test_no_expected_statuses_means_200_to_399() -> None:
    assert config(Step("a", "GET", "/", expected_statuses=())).validate() == []
    bad = config(Step("a", "GET", "/", expected_statuses=(99,)))
    assert "none means 200-399" in problems(bad)["steps[0].expected_statuses"][0]


def test_a_flow_round_trips_through_the_document_names() -> None:
    original = config(
        CREATE,
        Step(
            "wait",
            "GET",
            "/api/batches/{{ batch_id }}/",
            expected_statuses=(),
            poll=Poll("$.status", "done", max_attempts=5, interval_s=0.2),
            extract=(Extraction("session", "cookie", "sessionid"),),
        ),
        data_rows=({"email": "a@x"},),
        data_columns=("email",),
        data_order="unique",
    )
    document = original.to_dict()
    assert document["mode"] == "flow"
    wait = document["steps"][1]
    assert wait["extract"] == [{"variable": "session", "from": "cookie", "expression": "sessionid"}]
    assert wait["poll"] == {
        "until_path": "$.status", "until_value": "done", "max_attempts": 5, "interval_s": 0.2,
    }  # fmt: skip
    assert wait["expected_statuses"] == []
    assert EngineConfig.from_dict(document) == original


def test_data_settings_stay_out_of_the_document_when_default() -> None:
    document = config(Step("a", "GET", "/"), mode="requests").to_dict()
    assert not {"data_rows", "data_columns", "data_order"} & set(document)
    assert document["steps"][0]["extract"] == [] and document["steps"][0]["poll"] is None


def test_documents_without_expected_statuses_keep_their_meaning() -> None:
    step = {"name": "a", "method": "GET", "path": "/"}
    base = {"target_base_url": "http://x:1", "load_model": "closed", "users": 1, "duration_s": 1}
    requests_mode = EngineConfig.from_dict({**base, "steps": [step]})
    assert requests_mode.mode == "requests" and requests_mode.steps[0].expected_statuses == (200,)
    flow_mode = EngineConfig.from_dict({**base, "mode": "flow", "steps": [step]})
    assert flow_mode.steps[0].expected_statuses == ()
    explicit = EngineConfig.from_dict({**base, "steps": [{**step, "expected_statuses": []}]})
    assert explicit.steps[0].expected_statuses == ()
