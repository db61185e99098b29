"""Flow mode under load: data orders, iteration figures, the open model's timing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from loadtests.engine import EngineConfig, Extraction, IntervalSnapshot, Poll, Stage, Step, run
from stats.histogram import Histogram
from tests.engine.flow_server import FlowServer

ROWS = tuple({"n": str(n)} for n in range(1, 6))


def flow(base_url: str, *steps: Step, **fields: Any) -> EngineConfig:
    fields.setdefault("load_model", "closed")
    fields.setdefault("users", 1)
    fields.setdefault("duration_s", 1.0)
    fields.setdefault("abort_error_rate_pct", None)
    return EngineConfig(target_base_url=base_url, steps=steps, mode="flow", **fields)


def seen_rows(server: FlowServer) -> list[str]:
    return [query.removeprefix("n=") for query in server.seen]


def test_unique_rows_are_each_used_once_then_the_run_ends_cleanly(
    flow_target: FlowServer,
) -> None:
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?n={{ row.n }}"),
        users=3,
        duration_s=60,
        data_rows=ROWS,
        data_columns=("n",),
        data_order="unique",
    )
    result = run(config)
    assert result.status == "completed"
    assert result.reason == "data set exhausted"
    assert result.duration_s < 60
    assert sorted(seen_rows(flow_target)) == ["1", "2", "3", "4", "5"]
    assert result.iterations == 5 and result.iterations_failed == 0


def test_unique_rows_run_out_under_the_open_model_too(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?n={{ row.n }}"),
        load_model="open",
        users=0,
        rate_rps=20,
        duration_s=60,
        data_rows=ROWS,
        data_order="unique",
    )
    result = run(config)
    assert (result.status, result.reason) == ("completed", "data set exhausted")
    assert sorted(seen_rows(flow_target)) == ["1", "2", "3", "4", "5"]


def test_sequential_rows_are_shared_by_users_and_wrap_around(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?n={{ row.n }}"),
        users=2,
        duration_s=1.0,
        data_rows=ROWS,
        data_order="sequential",
    )
    result = run(config)
    seen = seen_rows(flow_target)
    assert len(seen) == result.iterations > len(ROWS)
    # Shared across users: together they take the rows in turn, wrapping around, so every row
    # is used and none more than once beyond the others. (Not in arrival order: two users'
    # requests may overtake each other on the way.)
    counts = Counter(seen)
    assert set(counts) == {"1", "2", "3", "4", "5"}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_random_rows_come_from_the_data_set(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?n={{ row.n }}"),
        duration_s=1.0,
        data_rows=ROWS,
        data_order="random",
    )
    run(config)
    seen = seen_rows(flow_target)
    assert len(seen) > 20
    assert set(seen) <= {"1", "2", "3", "4", "5"} and len(set(seen)) > 1


def test_users_and_iterations_are_numbered_from_one(flow_target: FlowServer) -> None:
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?u={{ user }}&i={{ iteration }}"),
        users=2,
        duration_s=0.5,
    )
    run(config)
    pairs = [dict(part.split("=") for part in query.split("&")) for query in flow_target.seen]
    assert {pair["u"] for pair in pairs} == {"1", "2"}
    for user in ("1", "2"):
        iterations = [int(p["i"]) for p in pairs if p["u"] == user]
        assert iterations == list(range(1, len(iterations) + 1))


def test_snapshots_carry_iterations_and_their_histogram(flow_target: FlowServer) -> None:
    snapshots: list[IntervalSnapshot] = []
    config = flow(
        flow_target.base_url,
        Step(
            "create",
            "POST",
            "/jobs",
            expected_statuses=(201,),
            extract=(Extraction("job_id", "json", "$.id"),),
        ),
        Step("read", "GET", "/jobs/{{ job_id }}"),
        duration_s=2.0,
    )
    result = run(config, sink=snapshots.append)
    assert len(snapshots) == 2
    assert sum(s.iterations for s in snapshots) == result.iterations > 0
    merged = Histogram()
    for snapshot in snapshots:
        merged.merge(Histogram.decode(snapshot.iteration_histogram))
        assert snapshot.per_step["read"]["attempts"] == snapshot.per_step["read"]["requests"]
    assert merged.total_count == result.iterations == result.iteration.total_count  # type: ignore[union-attr]
    summary = result.to_dict()
    assert summary["iterations"] == result.iterations
    assert summary["iteration_ms"]["p99"] >= summary["per_step"]["read"]["p99_ms"]


def test_requests_mode_snapshots_have_no_iteration_figures(target: str) -> None:
    snapshots: list[IntervalSnapshot] = []
    config = EngineConfig(
        target_base_url=target,
        steps=(Step("ok", "GET", "/ok"),),
        load_model="open",
        rate_rps=20,
        duration_s=1,
    )
    result = run(config, sink=snapshots.append)
    (snapshot,) = snapshots
    assert snapshot.iteration_histogram == "" and snapshot.iterations == 0
    assert snapshot.per_step == {"ok": {"requests": 20, "errors": 0}}
    assert result.iteration is None and "iteration_ms" not in result.to_dict()


def test_open_model_iterations_count_from_their_intended_start(freezing_target: str) -> None:
    # The target stalls its whole process for 1 s every 3 s; 2 connections cannot absorb
    # the arrivals meanwhile, so iterations queue. Timed from their intended start, the
    # queueing shows in the iteration latency even though each request is quick once sent.
    config = flow(
        freezing_target,
        Step("first", "GET", "/json", extract=(Extraction("id", "json", "$.data.id"),)),
        Step("second", "GET", "/ok?id={{ id }}"),
        load_model="open",
        users=0,
        rate_rps=40,
        duration_s=5.0,
        max_connections=2,
        timeout_s=5.0,
    )
    result = run(config)
    assert result.errors == 0
    iteration = result.to_dict()["iteration_ms"]
    assert iteration["count"] == result.iterations >= 150
    assert iteration["p99"] >= 500
    assert iteration["max"] >= 700
    first = result.per_step["first"]
    assert first["p99_ms"] >= 500  # corrected from the arrival, like the requests mode


def test_a_timeout_is_an_error_of_its_step_and_fails_the_iteration(target: str) -> None:
    config = flow(
        target,
        Step("fine", "GET", "/ok"),
        Step("stuck", "GET", "/hang"),
        Step("never", "GET", "/ok"),
        duration_s=1.0,
        timeout_s=0.2,
    )
    result = run(config)
    assert result.iterations >= 2 and result.iterations_failed == result.iterations
    timeout = result.errors_by_class["timeout"]
    assert timeout["sample"] == "stuck: no response within 0.2 s"
    assert result.per_step["never"]["requests"] == 0


def test_a_cancel_ends_a_polling_flow_within_a_second(flow_target: FlowServer) -> None:
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    config = flow(
        flow_target.base_url,
        Step("create", "POST", "/jobs?ready_after=1000", expected_statuses=(201,),
             extract=(Extraction("job_id", "json", "$.id"),)),
        Step("wait", "GET", "/jobs/{{ job_id }}",
             poll=Poll("$.status", "done", max_attempts=1000, interval_s=0.3)),
        users=2,
        duration_s=60,
    )  # fmt: skip
    started = time.monotonic()
    timer.start()
    result = run(config, cancel=cancel)
    timer.join()
    assert result.status == "cancelled"
    assert time.monotonic() - started < 1.0 + 3.0  # of the 60 s asked for
    assert result.per_step["wait"]["attempts"] >= 4
    assert result.iterations == 0  # none finished; the unfinished ones are not counted


def test_stages_ramp_flow_users_up_and_down(flow_target: FlowServer) -> None:
    snapshots: list[IntervalSnapshot] = []
    config = flow(
        flow_target.base_url,
        Step("use", "GET", "/seen?u={{ user }}"),
        users=0,
        stages=(Stage(1.0, 3), Stage(1.0, 3), Stage(1.0, 1)),
        duration_s=3.0,
        think_time_min_s=0.01,
        think_time_max_s=0.02,
    )
    run(config, sink=snapshots.append)
    assert [s.active_users for s in snapshots][1] == 3
    assert snapshots[-1].active_users <= 2
    assert {query for query in flow_target.seen} == {"u=1", "u=2", "u=3"}
