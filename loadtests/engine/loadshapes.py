"""The open (arrival-rate) and closed (virtual-user) load models: the engine's hot path.

Both are callback-driven: a response arrives in `Connection.on_message_complete`, which calls
`on_response` here; that records into the interval's histograms and, without awaiting
anything, sends the next request on the same connection. No futures, tasks or per-request
objects: the request's state lives on its connection.
"""

from __future__ import annotations

import asyncio
import functools
import random
from bisect import bisect
from collections import deque
from itertools import accumulate
from typing import Any

from loadtests.engine import errors
from loadtests.engine.config import EngineConfig, expected_statuses_text
from loadtests.engine.http import (
    Connection,
    InvalidRequestTarget,
    PreparedStep,
    Target,
    build_request,
    clock,
    connection_class,
)
from loadtests.engine.pool import Pool
from loadtests.engine.scheduler import ArrivalSchedule, Ramp
from stats.histogram import (
    BUCKET_SHIFT,
    HIGHEST_TRACKABLE_US,
    SUB_BUCKET_MASK,
    Histogram,
)
from stats.histogram import SUB_BUCKET_HALF_COUNT_MAGNITUDE as HALF_MAGNITUDE

LATE_START_S = 0.010
# The loop's timers have millisecond granularity, so a pacing timer fires up to a millisecond
# late or early. Requests due within this horizon start at once: a request started a little
# early has its latency counted from the actual send, while one started late would carry
# the timer's lateness into its corrected latency.
LOOKAHEAD_S = 0.001
BACKLOG_PER_RPS = 10
BACKLOG_MIN = 1_000
BACKLOG_MAX = 100_000


class Interval:
    """What happened during one tick; swapped for a fresh one at every tick."""

    __slots__ = (
        "latency", "service", "latency_counts", "service_counts", "step_requests",
        "step_errors", "errors_by_class", "error_samples", "late_starts", "lag_max_s",
        "iteration", "iterations", "iterations_failed", "step_polls_exhausted",
    )  # fmt: skip

    def __init__(self, step_count: int, flow: bool = False) -> None:
        self.latency = Histogram()
        self.service = Histogram()
        self.latency_counts = self.latency.counts
        self.service_counts = self.service.counts
        self.step_requests = [0] * step_count
        self.step_errors = [0] * step_count
        self.errors_by_class: dict[str, int] = {}
        self.error_samples: dict[str, str] = {}
        self.late_starts = 0
        self.lag_max_s = 0.0
        # Flow mode only: whole iterations (journeys) and exhausted polls.
        self.iteration = Histogram() if flow else None
        self.iterations = 0
        self.iterations_failed = 0
        self.step_polls_exhausted = [0] * step_count if flow else None

    @property
    def requests(self) -> int:
        return sum(self.step_requests)

    @property
    def errors(self) -> int:
        return sum(self.step_errors)


class LoadDriver:
    """What both load models share: connections, the backlog of waiting requests and recording.

    Drives the requests of an open or closed model (its subclasses); not the Django
    `loadtests.models.LoadModel` choices, which only name the model.
    """

    # Why the load ended early and cleanly (a flow's data set running out); "" otherwise.
    end_reason = ""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: EngineConfig) -> None:
        self.loop = loop
        self.config = config
        self.target = Target(config.target_base_url)
        self.steps = [PreparedStep(i, step, self.target) for i, step in enumerate(config.steps)]
        self.single_step = self.steps[0] if len(self.steps) == 1 else None
        self.cumulative_weights = list(accumulate(step.weight for step in config.steps))
        self.total_weight = self.cumulative_weights[-1]
        self.ramp = Ramp(
            config.stages,
            constant=float(config.rate_rps if config.is_open else config.users),
            duration_s=config.duration_s,
            start=config.start_target,
        )
        self.pool = Pool(
            loop,
            self,
            self.target,
            max_connections=config.max_connections,
            connect_timeout_s=config.timeout_s,
            connection_class=connection_class(self.steps, config.follow_redirects),
            verify_tls=config.verify_tls,
        )
        self.follow_redirects = config.follow_redirects
        self.interval = Interval(len(self.steps))
        # (user or None, step, intended start) of requests waiting for a connection.
        self.waiting: deque[tuple[Any, PreparedStep, float]] = deque()
        self.in_flight = 0
        self.stale_retries = 0
        self.running = False
        self.t0 = 0.0

    # -- lifecycle (called by the runner) ----------------------------------------------------

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.running = True

    def stop(self) -> None:
        """Start no new requests; those in flight may still finish."""
        self.running = False
        self.waiting.clear()

    def adjust(self, offset_s: float) -> None:
        """Follow the ramp; called a few times a second."""

    def target_at(self, offset_s: float) -> float:
        return self.ramp.target_at(offset_s)

    @property
    def active_users(self) -> int:
        return 0

    def swap_interval(self) -> Interval:
        finished = self.interval
        self.interval = Interval(len(self.steps))
        return finished

    def sweep_timeouts(self, now: float) -> None:
        deadline = now - self.config.timeout_s
        for conn in self.pool.busy_connections():
            if conn.sent_at < deadline:
                conn.fail(errors.TIMEOUT, f"no response within {self.config.timeout_s:g} s")

    # -- picking and sending ---------------------------------------------------------------

    def pick(self) -> PreparedStep:
        single = self.single_step
        if single is not None:
            return single
        return self.steps[bisect(self.cumulative_weights, random.random() * self.total_weight)]

    def dispatch(
        self, user: Any, step: PreparedStep, intended: float, now: float | None = None
    ) -> None:
        """Send now on an idle connection, or queue until one is free."""
        idle = self.pool.idle
        if idle:
            conn = idle.pop()
            conn.user = user
            self.in_flight += 1
            if now is None:
                now = clock()
            if now - intended > LATE_START_S:
                self.interval.late_starts += 1
            conn.send(step, intended, now)
        else:
            self.waiting.append((user, step, intended))
            self.refill()

    def refill(self) -> None:
        """Open connections while requests wait and the cap allows."""
        pool = self.pool
        while self.running and pool.connecting < len(self.waiting) and pool.can_open():
            pool.open()

    def release(self, conn: Connection) -> None:
        """A connection finished its request: give it the next waiting request, or park it."""
        if not conn.reusable:
            conn.close()
            return
        waiting = self.waiting
        while waiting and self.running:
            user, step, intended = waiting.popleft()
            if user is not None and user.stopping:
                self.retire(user)
                continue
            conn.user = user
            self.in_flight += 1
            now = clock()
            if now - intended > LATE_START_S:
                self.interval.late_starts += 1
            conn.send(step, intended, now)
            return
        self.pool.idle.append(conn)

    # -- pool callbacks ------------------------------------------------------------------------

    def connection_ready(self, conn: Connection) -> None:
        self.release(conn)

    def connect_failed(self, error_class: str, message: str) -> None:
        # The request at the head of the queue was the one waiting for this connection.
        if self.waiting:
            user, step, _ = self.waiting.popleft()
            self.count_request(step)
            self.record_error(step, error_class, message)
            self.after(user)
        self.refill()

    def connection_gone(self) -> None:
        self.refill()

    # -- responses -------------------------------------------------------------------------

    def on_response(self, conn: Connection, status: int) -> None:
        # The hot path. Histogram.record is inlined (same arithmetic, see counts_index) because
        # a method call per value is a measurable share of the per-request budget.
        now = clock()
        step: PreparedStep = conn.step  # type: ignore[assignment]
        if self.follow_redirects and 300 <= status < 400 and self.follow(conn):
            return
        self.in_flight -= 1
        sent = conn.sent_at
        start = conn.intended
        if sent < start:
            start = sent
        interval = self.interval
        value = int((now - start) * 1_000_000.0)
        if value <= HIGHEST_TRACKABLE_US:
            bucket = (value | SUB_BUCKET_MASK).bit_length() - BUCKET_SHIFT
            index = (bucket << HALF_MAGNITUDE) + (value >> bucket)
            interval.latency_counts[index] += 1
            step.latency_counts[index] += 1
        else:
            interval.latency.record(value)
            step.latency.record(value)
        value = int((now - sent) * 1_000_000.0)
        if value <= HIGHEST_TRACKABLE_US:
            bucket = (value | SUB_BUCKET_MASK).bit_length() - BUCKET_SHIFT
            interval.service_counts[(bucket << HALF_MAGNITUDE) + (value >> bucket)] += 1
        else:
            interval.service.record(value)
        interval.step_requests[step.index] += 1
        if status not in step.expect:
            self.status_error(step, status)
        elif step.check is not None:
            failure = step.check(conn.take_body())
            if failure is not None:
                self.record_error(step, errors.CHECK_FAILED, failure)
        user = conn.user
        if user is None:
            self.release(conn)
        else:
            self.next_iteration(conn, user, now)

    def next_iteration(self, conn: Connection, user: Any, now: float) -> None:
        """A virtual user's request is over (closed model only)."""

    def on_failure(self, conn: Connection, error_class: str, message: str) -> None:
        self.end_failed(conn, error_class, message)
        user = conn.user
        conn.user = None
        if user is not None:
            self.after(user)

    def on_stale(self, conn: Connection) -> None:
        """Send again a request that a reused connection lost before any answer.

        It keeps its intended start, so the time lost shows in its corrected latency; it
        goes to another connection (or waits for one), never to the one that failed.
        """
        self.in_flight -= 1
        self.stale_retries += 1
        user = conn.user
        conn.user = None
        self.dispatch(user, conn.step, conn.intended)  # type: ignore[arg-type]

    def follow(self, conn: Connection) -> bool:
        """Send the request for a same-origin redirect on this connection, or end the request
        as a `protocol` error when its location may not be sent; False if neither."""
        location = conn.location
        if not location or conn.hops >= 5 or not conn.reusable:
            return False
        step: PreparedStep = conn.step  # type: ignore[assignment]
        method = step.method if step.method in ("GET", "HEAD") else "GET"
        headers = {k: v for k, v in step.headers.items() if k.lower() != "content-type"}
        try:
            path = self.target.same_origin_path(location.decode("latin-1"))
            if path is None:
                return False
            request = _redirect_request(self.target, method, path, headers)
        except InvalidRequestTarget as exc:
            self.reject_redirect(conn, str(exc))
            return True
        conn.resend(request)
        return True

    def reject_redirect(self, conn: Connection, message: str) -> None:
        """End the request with a `protocol` error; its connection stays (the answer was whole)."""
        self.end_failed(conn, errors.PROTOCOL, message)
        user = conn.user
        if user is None:
            self.release(conn)
        else:
            self.next_iteration(conn, user, clock())

    def end_failed(self, conn: Connection, error_class: str, message: str) -> None:
        """Count the connection's request as over, with an error of `error_class`."""
        self.in_flight -= 1
        step: PreparedStep = conn.step  # type: ignore[assignment]
        self.count_request(step)
        self.record_error(step, error_class, message)

    def count_request(self, step: PreparedStep) -> None:
        self.interval.step_requests[step.index] += 1

    def status_error(self, step: PreparedStep, status: int) -> None:
        error_class = errors.status_class(status)
        message = ""
        if error_class not in self.interval.error_samples:
            expected = expected_statuses_text(step.step.expected_statuses)
            message = f"{step.name}: expected status {expected}, got {status}"
        self.record_error(step, error_class, message)

    def record_error(self, step: PreparedStep, error_class: str, message: str) -> None:
        interval = self.interval
        interval.step_errors[step.index] += 1
        interval.errors_by_class[error_class] = interval.errors_by_class.get(error_class, 0) + 1
        if error_class not in interval.error_samples:
            interval.error_samples[error_class] = errors.truncate(message)

    def after(self, user: Any) -> None:
        """What a virtual user does once its request is over (closed model only)."""

    async def shutdown(self) -> None:
        """Close every connection once the run is over."""
        self.pool.close_all()

    def retire(self, user: Any) -> None:
        """A virtual user stops (closed model only)."""


@functools.lru_cache(maxsize=256)
def _redirect_request_cached(
    target: Target, method: str, path: str, headers: tuple[tuple[str, str], ...]
) -> bytes:
    return build_request(target, method, path, dict(headers), None)


def _redirect_request(target: Target, method: str, path: str, headers: dict[str, str]) -> bytes:
    # Redirect targets repeat, so their requests are built once, like the steps' own.
    return _redirect_request_cached(target, method, path, tuple(sorted(headers.items())))


class OpenModel(LoadDriver):
    """Requests start on a schedule (wrk2 style), whatever the target's latency.

    Latency counts from each request's intended start, so a stalled target shows up in it
    (coordinated omission corrected); service time counts from the actual send. Requests
    that find every connection busy wait, keeping their intended start; past the backlog
    bound they are counted as `dropped`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: EngineConfig) -> None:
        super().__init__(loop, config)
        self.schedule = ArrivalSchedule(self.ramp)
        self.next_due: float | None = None
        self.backlog_limit = config.max_backlog or int(
            min(max(BACKLOG_PER_RPS * self.ramp.peak(), BACKLOG_MIN), BACKLOG_MAX)
        )
        self.pump_handle: asyncio.TimerHandle | None = None
        self.issued = 0

    def start(self, t0: float) -> None:
        super().start(t0)
        self.next_due = self.schedule.next()
        self.pump()

    def stop(self) -> None:
        super().stop()
        if self.pump_handle is not None:
            self.pump_handle.cancel()

    def pump(self) -> None:
        """Start every request whose intended time has come, then sleep until the next."""
        if not self.running:
            return
        t0 = self.t0
        horizon = clock() - t0 + LOOKAHEAD_S
        due = self.next_due
        schedule = self.schedule
        issued = 0
        while due is not None and due <= horizon:
            self.issue(t0 + due)
            issued += 1
            due = schedule.next()
        self.issued += issued
        self.next_due = due
        if due is not None:
            delay = t0 + due - LOOKAHEAD_S - clock()
            self.pump_handle = self.loop.call_later(max(delay, 0.0), self.pump)

    def issue(self, intended: float) -> None:
        step = self.pick()
        if self.pool.idle or len(self.waiting) < self.backlog_limit:
            self.dispatch(None, step, intended)
            return
        self.count_request(step)
        self.record_error(
            step,
            errors.DROPPED,
            f"{len(self.waiting)} requests already waiting for one of "
            f"{self.config.max_connections} connections",
        )

    def planned_requests(self, offset_s: float) -> float:
        return self.ramp.integral(0.0, offset_s)


class User:
    """A virtual user of the closed model."""

    __slots__ = ("stopping", "handle", "resume")

    def __init__(self) -> None:
        self.stopping = False
        self.handle: asyncio.TimerHandle | None = None
        self.resume: Any = None


class ClosedModel(LoadDriver):
    """Virtual users loop: pick a weighted step, wait for its response, think, repeat.

    Latency equals service time (plus any wait for a free connection when users outnumber
    connections). Ramping down stops the newest users after their current request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: EngineConfig) -> None:
        super().__init__(loop, config)
        self.users: list[User] = []
        self.think_time_min_s = config.think_time_min_s
        self.think_time_span_s = config.think_time_max_s - config.think_time_min_s
        self.thinks = config.think_time_max_s > 0

    def start(self, t0: float) -> None:
        super().start(t0)
        self.adjust(0.0)

    def stop(self) -> None:
        super().stop()
        for user in self.users:
            user.stopping = True
            if user.handle is not None:
                user.handle.cancel()
                user.handle = None

    @property
    def active_users(self) -> int:
        return len(self.users)

    def adjust(self, offset_s: float) -> None:
        if not self.running:
            return
        wanted = int(self.ramp.target_at(offset_s) + 0.5)
        while len(self.users) < wanted:
            user = User()
            user.resume = functools.partial(self.begin, user)
            self.users.append(user)
            self.begin(user)
        while len(self.users) > wanted:
            user = self.users.pop()
            user.stopping = True
            if user.handle is not None:
                user.handle.cancel()
                user.handle = None

    def begin(self, user: User) -> None:
        """Start the user's next iteration."""
        user.handle = None
        if user.stopping or not self.running:
            return
        now = clock()
        self.dispatch(user, self.pick(), now, now)

    def next_iteration(self, conn: Connection, user: User, now: float) -> None:
        if (
            conn.reusable
            and not self.thinks
            and not self.waiting
            and self.running
            and not user.stopping
        ):
            # The common case without think time: the same user sends its next request on
            # the same connection straight away; Connection.send inlined.
            single = self.single_step
            step = single if single is not None else self.pick()
            self.in_flight += 1
            conn.step = step
            conn.intended = conn.sent_at = now
            conn.busy = True
            conn.received = False
            conn.hops = 0
            conn.uses += 1
            conn.transport.write(step.request)  # type: ignore[union-attr]
            return
        self.release(conn)
        self.after(user)

    def after(self, user: User) -> None:
        if user.stopping or not self.running:
            return
        if self.thinks:
            pause = self.think_time_min_s + random.random() * self.think_time_span_s
            user.handle = self.loop.call_later(pause, user.resume)
        else:
            self.begin(user)

    def retire(self, user: User) -> None:
        user.handle = None


def make_model(loop: asyncio.AbstractEventLoop, config: EngineConfig) -> LoadDriver:
    return OpenModel(loop, config) if config.is_open else ClosedModel(loop, config)
