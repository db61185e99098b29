"""The public entry point: `run(config, sink, cancel) -> RunResult`.

The event loop runs on the calling thread. Every tick the loop thread swaps out the
interval's counters and histograms and queues them; a publisher thread owned by the engine
encodes them, merges them into the run's totals and calls the sink. So the sink may block
(the Django side writes to its database there) without stalling the load, and never runs on
a thread that has a running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtests.engine.config import ConfigError, EngineConfig
from loadtests.engine.flow import make_flow_driver
from loadtests.engine.http import clock
from loadtests.engine.loadshapes import Interval, LoadDriver, OpenModel, make_model
from loadtests.engine.results import (
    IntervalSnapshot,
    Outcome,
    RunResult,
    judge_health,
    merge_errors,
    ms,
    summary_ms,
)
from stats.histogram import Histogram

log = logging.getLogger(__name__)
__all__ = ["ConfigError", "Runner", "Sink", "run"]

Sink = Callable[[IntervalSnapshot], None]

CONTROL_S = 0.05  # cancel checks, timeouts, user ramping, loop-lag probe
DRAIN_S = 1.0  # how long requests in flight at the end may still finish
CANCEL_DRAIN_S = 0.25  # shorter after a cancel or abort: the caller wants the run to end
GIL_SWITCH_INTERVAL_S = 0.0005  # see run()
COMPLETED, CANCELLED, ABORTED = Outcome.COMPLETED, Outcome.CANCELLED, Outcome.ABORTED


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the engine works on the standard loop too, only slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    config: EngineConfig,
    sink: Sink | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run a load test to completion on a new event loop and return its result.

    `sink` receives one IntervalSnapshot per tick on an engine-owned thread (in order; the
    loop never waits for it). Setting `cancel` from any thread ends the run within a second
    with status 'cancelled', keeping everything recorded. Raises ConfigError for a config
    that does not validate, and re-raises the first exception the sink raised (the run
    stops at that point).
    """
    problems = config.validate()
    if problems:
        raise ConfigError(problems)
    loop = new_event_loop()
    runner = Runner(loop, config, sink, cancel or threading.Event())
    loop.set_exception_handler(runner.loop_error)
    # The publisher's once-a-second work (histogram maths, the sink's database write) holds
    # the GIL for a few milliseconds; with the default 5 ms switch interval the loop thread
    # would wait that long for it, and the responses it was about to read would show the
    # wait as latency. A short interval hands the GIL back to the loop within 0.5 ms.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, GIL_SWITCH_INTERVAL_S))
    try:
        result = loop.run_until_complete(runner.main())
    finally:
        sys.setswitchinterval(switch_interval)
        runner.publisher.close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    if runner.publisher.failure is not None:
        raise runner.publisher.failure
    return result


@dataclass
class RawInterval:
    """An interval as the loop thread hands it over; the publisher does the heavy lifting."""

    index: int
    start_offset_s: float
    length_s: float
    counts: Interval
    target: float
    active_users: int
    in_flight: int
    backlog: int
    cpu_pct: float
    # In flight, sampled at each control tick (every CONTROL_S): a second's mean and peak.
    in_flight_mean: float = 0.0
    in_flight_max: int = 0


class Publisher:
    """The engine-owned thread that turns raw intervals into snapshots and feeds the sink."""

    def __init__(self, sink: Sink | None, step_names: list[str], flow: bool = False) -> None:
        self.sink = sink
        self.step_names = step_names
        self.flow = flow
        # Flow mode: whole iterations, and polls that ran out of attempts, per step.
        self.iteration = Histogram()
        self.iterations = 0
        self.iterations_failed = 0
        self.step_polls_exhausted = [0] * len(step_names)
        self.queue: queue.SimpleQueue[RawInterval | None] = queue.SimpleQueue()
        self.latency = Histogram()
        self.service = Histogram()
        self.requests = 0
        self.errors = 0
        self.errors_by_class: dict[str, dict[str, Any]] = {}
        self.step_requests = [0] * len(step_names)
        self.step_errors = [0] * len(step_names)
        self.late_starts = 0
        self.duration_s = 0.0
        self.intervals = 0
        self.cpu: list[tuple[float, float]] = []  # (cpu_pct, length_s)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="loadgen-sink", daemon=True)
        self.thread.start()

    def put(self, raw: RawInterval) -> None:
        self.queue.put(raw)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _work(self) -> None:
        while True:
            raw = self.queue.get()
            if raw is None:
                return
            snapshot = self._snapshot(raw)
            if self.sink is not None and self.failure is None:
                try:
                    self.sink(snapshot)
                except BaseException as exc:  # noqa: BLE001 - handed back to run()'s caller
                    log.exception("the load-test sink failed; stopping the run")
                    self.failure = exc

    def _snapshot(self, raw: RawInterval) -> IntervalSnapshot:
        counts = raw.counts
        requests, errors = counts.requests, counts.errors
        self._accumulate(raw, requests, errors)
        values = counts.latency.percentiles((50.0, 95.0, 99.0))
        return IntervalSnapshot(
            index=raw.index,
            start_offset_s=round(raw.start_offset_s, 6),
            length_s=round(raw.length_s, 6),
            requests=requests,
            errors=errors,
            errors_by_class=dict(counts.errors_by_class),
            error_samples=dict(counts.error_samples),
            latency_histogram=counts.latency.encode(),
            service_histogram=counts.service.encode(),
            latency_p50_ms=ms(values[50.0]),
            latency_p95_ms=ms(values[95.0]),
            latency_p99_ms=ms(values[99.0]),
            latency_max_ms=ms(counts.latency.max),
            throughput_rps=round(requests / raw.length_s, 3) if raw.length_s > 0 else 0.0,
            target=round(raw.target, 3),
            active_users=raw.active_users,
            in_flight=raw.in_flight,
            late_starts=counts.late_starts,
            cpu_pct=round(raw.cpu_pct, 1),
            loop_lag_ms=round(counts.lag_max_s * 1000.0, 3),
            per_step=self._per_step(counts),
            backlog=raw.backlog,
            in_flight_mean=round(raw.in_flight_mean, 3),
            in_flight_max=raw.in_flight_max,
            iteration_histogram=counts.iteration.encode() if counts.iteration is not None else "",
            iterations=counts.iterations,
            iterations_failed=counts.iterations_failed,
        )

    def _per_step(self, counts: Interval) -> dict[str, dict[str, int]]:
        per_step = {
            name: {"requests": counts.step_requests[i], "errors": counts.step_errors[i]}
            for i, name in enumerate(self.step_names)
        }
        polls = counts.step_polls_exhausted
        if polls is not None:
            for i, name in enumerate(self.step_names):
                per_step[name]["attempts"] = counts.step_requests[i]
                per_step[name]["polls_exhausted"] = polls[i]
        return per_step

    def _accumulate(self, raw: RawInterval, requests: int, errors: int) -> None:
        counts = raw.counts
        self.latency.merge(counts.latency)
        self.service.merge(counts.service)
        self.requests += requests
        self.errors += errors
        self.late_starts += counts.late_starts
        self.duration_s = raw.start_offset_s + raw.length_s
        self.intervals += 1
        self.cpu.append((raw.cpu_pct, raw.length_s))
        for i in range(len(self.step_names)):
            self.step_requests[i] += counts.step_requests[i]
            self.step_errors[i] += counts.step_errors[i]
        merge_errors(self.errors_by_class, counts.errors_by_class, counts.error_samples)
        if counts.iteration is not None:
            self.iteration.merge(counts.iteration)
            self.iterations += counts.iterations
            self.iterations_failed += counts.iterations_failed
            for i, exhausted in enumerate(counts.step_polls_exhausted or ()):
                self.step_polls_exhausted[i] += exhausted


class Runner:
    """One run on one event loop: ticks, control, stopping and the final result."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: EngineConfig,
        sink: Sink | None,
        cancel: threading.Event,
    ) -> None:
        self.loop = loop
        self.config = config
        self.cancel = cancel
        self.model: LoadDriver = (make_flow_driver if config.is_flow else make_model)(loop, config)
        self.publisher = Publisher(sink, [step.name for step in config.steps], config.is_flow)
        self.lag = Histogram()  # event-loop lag samples, µs
        self.window: deque[tuple[int, int]] = deque(
            maxlen=max(1, math.ceil(config.abort_window_s / config.tick_s))
        )
        self.status: Outcome | None = None
        self.reason = ""
        self.t0 = 0.0
        self.tick_index = 0
        self.last_tick = 0.0
        self.cpu_last = 0.0
        self.control_due = 0.0
        self.finished: asyncio.Future[None] | None = None
        self.tick_handle: asyncio.TimerHandle | None = None
        self.control_handle: asyncio.TimerHandle | None = None
        self.internal_error: str | None = None
        # In flight as sampled by control() during the current interval.
        self.flight_sum = 0
        self.flight_samples = 0
        self.flight_max = 0

    async def main(self) -> RunResult:
        self.finished = self.loop.create_future()
        await self.model.pool.resolve()
        self.t0 = self.last_tick = clock()
        self.cpu_last = time.process_time()
        if self.cancel.is_set():
            self.finish(CANCELLED, "Cancelled before the first request.")
        else:
            self.model.start(self.t0)
            self.control_due = self.t0 + CONTROL_S
            self.control_handle = self.loop.call_later(CONTROL_S, self.control)
            self.tick_handle = self.loop.call_later(self._next_tick_delay(), self.tick)
        await self.finished
        await self._drain()
        await self.model.shutdown()
        await asyncio.sleep(0)  # let cancelled connects and aborted transports wind down
        self.emit(clock())
        self.publisher.close()
        return self.result()

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception escaped a callback: stop the run rather than carry on half-broken."""
        exc = context.get("exception")
        message = context.get("message", "")
        log.error("load engine error: %s", message, exc_info=exc)
        if self.internal_error is None:
            self.internal_error = f"{message}: {exc!r}" if exc is not None else message

    # -- timers ---------------------------------------------------------------------------

    def _tick_due(self) -> float:
        """When the current interval ends (clock time)."""
        offset = min((self.tick_index + 1) * self.config.tick_s, self.config.duration_s)
        return self.t0 + offset

    def _next_tick_delay(self) -> float:
        return max(self._tick_due() - clock(), 0.0)

    def control(self) -> None:
        if self.status:
            return
        now = clock()
        lag = max(now - self.control_due, 0.0)
        self.lag.record(int(lag * 1_000_000))
        interval = self.model.interval
        if lag > interval.lag_max_s:
            interval.lag_max_s = lag
        if self.cancel.is_set():
            self.finish(CANCELLED, "Cancelled by request.")
            return
        if self.publisher.failure is not None:
            self.finish(CANCELLED, f"The sink failed: {self.publisher.failure!r}")
            return
        if self.internal_error is not None:
            self.finish(ABORTED, f"Engine error: {self.internal_error}"[:500])
            return
        if self.model.end_reason:
            self.finish(COMPLETED, self.model.end_reason)
            return
        self.model.sweep_timeouts(now)
        self.model.adjust(now - self.t0)
        self._sample_in_flight()
        self.control_due = now + CONTROL_S
        self.control_handle = self.loop.call_later(CONTROL_S, self.control)

    def tick(self) -> None:
        if self.status:
            return
        now = clock()
        if now < self._tick_due():
            # The loop's timers have millisecond granularity and may fire a little early.
            self.tick_handle = self.loop.call_later(self._tick_due() - now, self.tick)
            return
        offset = now - self.t0
        interval = self.model.interval
        requests, errors = interval.requests, interval.errors
        reason = self._abort_reason(requests, errors)
        if reason:
            self.finish(ABORTED, reason)
            return
        if offset >= self.config.duration_s - 1e-3:
            self.finish(COMPLETED, "")
            return
        self.emit(now)
        self.tick_handle = self.loop.call_later(self._next_tick_delay(), self.tick)

    def _abort_reason(self, requests: int, errors: int) -> str:
        threshold = self.config.abort_error_rate_pct
        if threshold is None:
            return ""
        total_requests = requests + sum(r for r, _ in self.window)
        total_errors = errors + sum(e for _, e in self.window)
        if total_requests < self.config.abort_min_requests:
            return ""
        rate = 100.0 * total_errors / total_requests
        if rate <= threshold:
            return ""
        return (
            f"Aborted: the error rate was {rate:.1f}% over the last {self.config.abort_window_s} s "
            f"({total_errors} of {total_requests} requests), above the "
            f"{threshold:g}% abort threshold."
        )

    def _sample_in_flight(self) -> None:
        # At low concurrency the value read once a second is a 0/1 sawtooth: twenty readings
        # a second give the interval's mean and peak for the price of an addition.
        flying = self.model.in_flight + len(self.model.waiting)
        self.flight_sum += flying
        self.flight_samples += 1
        if flying > self.flight_max:
            self.flight_max = flying

    # -- stopping ---------------------------------------------------------------------------

    def finish(self, status: Outcome, reason: str) -> None:
        if self.status:
            return
        self.status, self.reason = status, reason
        self.model.stop()
        for handle in (self.tick_handle, self.control_handle):
            if handle is not None:
                handle.cancel()
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    async def _drain(self) -> None:
        grace = DRAIN_S if self.status == COMPLETED else CANCEL_DRAIN_S
        deadline = clock() + min(grace, self.config.timeout_s)
        while self.model.in_flight > 0 and clock() < deadline:
            await asyncio.sleep(0.002)

    # -- intervals --------------------------------------------------------------------------

    def emit(self, now: float) -> None:
        """Hand the interval that ends now to the publisher and start a new one."""
        model = self.model
        length = now - self.last_tick
        cpu_now = time.process_time()
        counts = model.swap_interval()
        middle = (self.last_tick + now) / 2 - self.t0
        flying = model.in_flight + len(model.waiting)
        self.publisher.put(
            RawInterval(
                index=self.tick_index,
                start_offset_s=self.last_tick - self.t0,
                length_s=length,
                counts=counts,
                target=model.target_at(min(middle, self.config.duration_s)),
                active_users=model.active_users,
                in_flight=flying,
                backlog=len(model.waiting),
                cpu_pct=100.0 * (cpu_now - self.cpu_last) / length if length > 0 else 0.0,
                in_flight_mean=(
                    self.flight_sum / self.flight_samples if self.flight_samples else flying
                ),
                in_flight_max=max(self.flight_max, flying),
            )
        )
        self.flight_sum = self.flight_samples = self.flight_max = 0
        self.window.append((counts.requests, counts.errors))
        self.tick_index += 1
        self.last_tick = now
        self.cpu_last = cpu_now

    # -- result -----------------------------------------------------------------------------

    def result(self) -> RunResult:
        pub = self.publisher
        duration = pub.duration_s
        achieved = pub.requests / duration if duration > 0 else 0.0
        return RunResult(
            status=self.status,
            reason=self.reason,
            duration_s=duration,
            requests=pub.requests,
            errors=pub.errors,
            throughput_rps=achieved,
            latency=pub.latency,
            service=pub.service,
            errors_by_class=pub.errors_by_class,
            per_step=self._per_step(),
            health=self._health(duration, achieved),
            intervals=pub.intervals,
            connections_opened=self.model.pool.connects,
            planned_requests=None if self.config.is_flow else self._planned(duration),
            iteration=pub.iteration if self.config.is_flow else None,
            iterations=pub.iterations,
            iterations_failed=pub.iterations_failed,
        )

    def _planned(self, duration: float) -> float | None:
        """Requests (flow mode: iterations) the open model planned to start so far."""
        if not self.config.is_open:
            return None
        offset = min(duration, self.config.duration_s)
        if isinstance(self.model, OpenModel):
            return round(self.model.planned_requests(offset), 3)
        return round(self.model.ramp.integral(0.0, offset), 3)

    def _per_step(self) -> dict[str, dict[str, Any]]:
        pub = self.publisher
        per_step = {}
        for i, step in enumerate(self.model.steps):
            summary = summary_ms(step.latency)
            per_step[step.name] = {
                "requests": pub.step_requests[i],
                "errors": pub.step_errors[i],
                "p50_ms": summary["p50"],
                "p95_ms": summary["p95"],
                "p99_ms": summary["p99"],
                "max_ms": summary["max"],
                "mean_ms": summary["mean"],
            }
            if self.config.is_flow:
                per_step[step.name]["attempts"] = pub.step_requests[i]
                per_step[step.name]["polls_exhausted"] = pub.step_polls_exhausted[i]
        return per_step

    def _health(self, duration: float, achieved: float) -> dict[str, Any]:
        pub = self.publisher
        weighted = sum(length for _, length in pub.cpu)
        cpu_mean = sum(p * length for p, length in pub.cpu) / weighted if weighted else 0.0
        cpu_max = max((p for p, _ in pub.cpu), default=0.0)
        lag = self.lag.percentiles((99.0,))[99.0] / 1000.0
        planned = self._planned(duration)
        target_rate = planned / duration if planned is not None and duration > 0 else None
        if self.config.is_flow and self.config.is_open and duration > 0:
            # A flow's open model plans iterations: compare like with like.
            achieved = pub.iterations / duration
        late_pct = 100.0 * pub.late_starts / pub.requests if pub.requests else 0.0
        valid, why = judge_health(
            is_open=self.config.is_open,
            cpu_mean=cpu_mean,
            lag_p99_ms=lag,
            target_rate=target_rate,
            achieved_rate=achieved,
            late_start_pct=late_pct,
        )
        return {
            "cpu_pct_mean": round(cpu_mean, 1),
            "cpu_pct_max": round(cpu_max, 1),
            "loop_lag_ms_p99": round(lag, 3),
            "loop_lag_ms_max": round(self.lag.max / 1000.0, 3),
            "target_rate": round(target_rate, 3) if target_rate is not None else None,
            "achieved_rate": round(achieved, 3),
            "late_starts": pub.late_starts,
            "late_start_pct": round(late_pct, 3),
            "stale_retries": self.model.stale_retries,
            "valid": valid,
            "invalid_reason": why,
        }
