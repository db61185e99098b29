"""Flow mode: each iteration runs the steps top to bottom, carrying variables and cookies.

Built on the requests mode's connections and pool. An iteration is a plain generator that
yields what it needs: a request to send (`Send`) or a pause (seconds). The driver sends the
request and, from the connection's response callback, hands the answer straight back to the
generator, which yields its next request while still inside that callback. So the next
request is written from the read callback, as the requests mode does: asyncio tasks and
futures would write from a task step instead, which costs several times more per request
(measured by bench/flow.py). The requests mode (loadshapes.py) is untouched by any of this.

Closed model: each virtual user loops iterations, thinking between steps and between
iterations; stages ramp users. Open model: each arrival starts one iteration (a new user,
with its own cookie jar) at its intended time; the iteration's latency counts from that
time, and its first request's latency too (coordinated omission corrected); later requests
count from when the previous step let them go.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httptools

from loadtests.engine import errors
from loadtests.engine.config import (
    RANDOM,
    SEQUENTIAL,
    UNIQUE,
    ConfigError,
    EngineConfig,
    Step,
    accepted_statuses,
    check_value_of,
    data_columns_of,
    expected_statuses_text,
    is_visible_ascii,
)
from loadtests.engine.extract import (
    MISSING,
    ExtractionFailed,
    Extractor,
    Headers,
    cookie_header,
    json_lookup,
    make_extractor,
    parse_json_path,
    update_jar,
)
from loadtests.engine.http import (
    IDEMPOTENT_METHODS,
    USER_AGENT,
    FullConnection,
    InvalidRequestTarget,
    Target,
    clock,
    make_check,
)
from loadtests.engine.loadshapes import (
    BACKLOG_MAX,
    BACKLOG_MIN,
    BACKLOG_PER_RPS,
    LATE_START_S,
    LOOKAHEAD_S,
    Interval,
    LoadDriver,
)
from loadtests.engine.pool import Pool
from loadtests.engine.scheduler import ArrivalSchedule, Ramp
from loadtests.engine.templates import Context, Template, compile_template
from stats.histogram import (
    BUCKET_SHIFT,
    HIGHEST_TRACKABLE_US,
    SUB_BUCKET_MASK,
    Histogram,
)
from stats.histogram import SUB_BUCKET_HALF_COUNT_MAGNITUDE as HALF_MAGNITUDE

DATA_EXHAUSTED = "data set exhausted"
# A request that may not be sent twice (POST, PATCH) goes only on a connection idle for less
# than this. A server closes an idle keep-alive connection after its own timeout (gunicorn's
# default is 2 s), and a close that crosses the request on the wire loses the request with no
# answer: an idempotent one is sent again (FlowConnection.on_stale), this one could not be, so
# it takes a new connection instead of an old one near that timeout.
UNSAFE_REUSE_IDLE_S = 1.0
TRACE_BODY_CHARS = 2048
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# What a rendered path may keep as it is; anything else (spaces, non-ASCII) is percent-encoded.
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%") + "%"


class RequestFailed(Exception):
    """A request ended without a response: (error class, message)."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class _Abandoned(Exception):
    """The run stopped: the iteration ends unrecorded."""


class Send:
    """What a flow generator yields to have a request sent; answered with
    (sent at, status, raw head, body) or a RequestFailed thrown in."""

    __slots__ = ("step", "request", "intended", "sent")

    def __init__(self, step: FlowStep, request: bytes, intended: float) -> None:
        self.step = step
        self.request = request
        self.intended = intended
        self.sent = 0.0


FlowGenerator = Generator["Send | float", Any, Any]


class FlowState:
    """One running generator (a closed-model user's life, or one open-model iteration)."""

    __slots__ = ("gen", "command", "handle", "done", "alive")

    def __init__(self, gen: FlowGenerator, done: Callable[[], None] | None = None) -> None:
        self.gen = gen
        self.command: Send | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.done = done
        self.alive = True


class FlowConnection(FullConnection):
    """Keeps every response's body and its raw head (status line and headers): extractions,
    redirects and the cookie jar read the head when they need it.

    httptools would call on_header once per header, a Python call each; a flow keeps the
    head's bytes instead (one find per response) and parses them only when asked.
    """

    __slots__ = ("head", "head_start")

    on_header = None  # type: ignore[assignment]

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.head: bytes | None = b""
        self.head_start = b""

    # The driver resets the body when it sends; only HEAD requests need headers_complete.
    on_message_begin = None  # type: ignore[assignment]
    on_headers_complete = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            buffered = self.head_start + data if self.head_start else data
            end = buffered.find(b"\r\n\r\n")
            if end == -1:
                self.head_start = buffered
            else:
                self.head = buffered[:end]
                self.head_start = b""
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(errors.PROTOCOL, errors.truncate(f"invalid HTTP response: {exc}"))


class FlowHeadConnection(FlowConnection):
    """For flows with a HEAD step: a response to HEAD has no body (see FullConnection)."""

    __slots__ = ()

    on_headers_complete = FullConnection.on_headers_complete
    data_received_flow = FlowConnection.data_received

    def data_received(self, data: bytes) -> None:
        self.data_received_flow(data)
        if self.head_pending:
            self.head_pending = False
            parser = self.parser
            status = parser.get_status_code()
            if not parser.should_keep_alive():
                self.reusable = False
            self.parser = httptools.HttpResponseParser(self)
            self.busy = False
            self.on_response(self, status)


class FlowStep:
    """A step compiled once: templates, checks, extractors and its own histogram."""

    def __init__(self, index: int, step: Step, config: EngineConfig, target: Target) -> None:
        columns = data_columns_of(config)
        known = _variables_before(config.steps, index) if config.is_flow else None
        self.index = index
        self.name = step.name
        self.step = step
        self.method = step.method
        self.is_head = step.method == "HEAD"
        self.idempotent = step.method in IDEMPOTENT_METHODS
        self.needs_body = True
        self.expect = accepted_statuses(step.expected_statuses)
        self.check = make_check(step)
        self.latency = Histogram()
        self.latency_counts = self.latency.counts
        self.path = compile_template(step.path, variables=known, columns=columns)
        self.headers: list[tuple[str, Template]] = [
            (name, compile_template(value, variables=known, columns=columns))
            for name, value in step.headers.items()
        ]
        self.body = (
            compile_template(step.body, variables=known, columns=columns)
            if step.body is not None
            else None
        )
        self.common = f"Host: {target.host_header}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
        self.prefix = target.prefix
        self.sends_length = step.method in ("POST", "PUT", "PATCH")
        self.extractors: list[tuple[str, Extractor]] = [
            (e.variable, make_extractor(e.source, e.expression)) for e in step.extract
        ]
        self.needs_headers = any(e.source in ("header", "cookie") for e in step.extract)
        self.poll = step.poll
        if step.poll is not None:
            self.poll_keys = parse_json_path(step.poll.until_path)
            wanted = step.poll.until_value
            self.poll_value = check_value_of(wanted) if isinstance(wanted, str) else wanted

        # Built once when only the path varies (or nothing does) and no cookie is due.
        self.fixed_tail: bytes | None = None
        self.fixed_request: bytes | None = None
        fixed = self.body is None or self.body.static
        if fixed and all(t.static and n.lower() != "cookie" for n, t in self.headers):
            self.fixed_tail = self.tail(Context(), {})
            if self.path.static:
                self.fixed_request = self.start_line(Context()) + self.fixed_tail

    def build(self, context: Context, jar: dict[str, str]) -> bytes:
        """The request's bytes for this iteration. Raises InvalidRequestTarget when a
        rendered header value may not be sent."""
        if self.fixed_tail is not None and not jar:
            if self.fixed_request is not None:
                return self.fixed_request
            return self.start_line(context) + self.fixed_tail
        return self.start_line(context) + self.tail(context, jar)

    def start_line(self, context: Context) -> bytes:
        """`METHOD /path` (the rest of the request line is in the tail)."""
        path = self.path.render(context)
        if not self.path.static and not is_visible_ascii(path):
            path = quote(path, safe=_PATH_SAFE)
        return f"{self.method} {self.prefix}{path}".encode("latin-1")

    def tail(self, context: Context, jar: dict[str, str]) -> bytes:
        """Everything after the path: ` HTTP/1.1`, the headers and the body."""
        lines = [" HTTP/1.1\r\n", self.common]
        user_cookie = ""
        for name, template in self.headers:
            value = template.render(context)
            if not template.static and _VALUE_CONTROL.search(value):
                raise InvalidRequestTarget(f"header {name}: the value has control characters")
            if name.lower() == "cookie":
                user_cookie = value
            else:
                lines.append(f"{name}: {value}\r\n")
        if jar or user_cookie:
            cookies = "; ".join(part for part in (user_cookie, cookie_header(jar)) if part)
            lines.append(f"Cookie: {cookies}\r\n")
        payload = self.body.render(context).encode("utf-8") if self.body is not None else b""
        if payload or self.sends_length:
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append("\r\n")
        try:
            head = "".join(lines).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise InvalidRequestTarget(f"a header value is not Latin-1 text: {exc}") from exc
        return head + payload

    def poll_state(self, body: bytes) -> tuple[bool, str]:
        """(done, the value seen at the poll's path, as text)."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # deeply nested: not a state the poll can read
            return False, "not JSON"
        value = json_lookup(document, self.poll_keys)
        if value is MISSING:
            return False, "missing"
        wanted = self.poll_value
        done = value == wanted and (type(value) is bool) == (type(wanted) is bool)
        return done, json.dumps(value)[:80]


def _variables_before(steps: tuple[Step, ...], index: int) -> tuple[str, ...]:
    names: list[str] = []
    for step in steps[:index]:
        names += [e.variable for e in step.extract if e.variable not in names]
    return tuple(names)


class DataFeed:
    """The data set's rows in the configured order, shared by every virtual user."""

    def __init__(self, rows: tuple[dict[str, str], ...], order: str) -> None:
        self.rows = rows
        self.order = order
        self.position = 0

    def take(self) -> dict[str, str] | None:
        """The next row, {} without a data set, None when a unique order has run out."""
        rows = self.rows
        if not rows:
            return {}
        if self.order == RANDOM:
            return random.choice(rows)  # noqa: S311 - load, not secrets
        position = self.position
        if self.order == UNIQUE and position >= len(rows):
            return None
        self.position = position + 1
        return rows[position % len(rows)]


class FlowUser:
    """A virtual user: its number, its cookie jar and whether it should stop."""

    __slots__ = ("number", "jar", "stopping", "task")

    def __init__(self, number: int) -> None:
        self.number = number
        self.jar: dict[str, str] = {}
        self.stopping = False
        self.task: asyncio.Task[None] | None = None


class FlowDriver(LoadDriver):
    """Runs iterations of a flow under the open or closed model (see the module docstring).

    Shares LoadDriver's timeouts, interval swapping and error recording; replaces how requests
    are sent (a coroutine per iteration awaiting a future per request).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: EngineConfig,
        trace: list[dict[str, Any]] | None = None,
    ) -> None:
        self.loop = loop
        self.config = config
        self.target = Target(config.target_base_url)
        self.steps = [FlowStep(i, step, config, self.target) for i, step in enumerate(config.steps)]
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
            connection_class=(
                FlowHeadConnection if any(s.is_head for s in self.steps) else FlowConnection
            ),
            verify_tls=config.verify_tls,
        )
        self.follow_redirects = config.follow_redirects
        self.interval = Interval(len(self.steps), flow=True)
        self.waiting: deque[FlowState] = deque()  # type: ignore[assignment]
        self.in_flight = 0
        self.stale_retries = 0
        self.running = False
        self.t0 = 0.0
        self.data = DataFeed(config.data_rows, config.data_order)
        self.exhausted = False
        self.end_reason = ""
        self.active_iterations = 0
        self.states: set[FlowState] = set()
        self.sends = 0
        self.users: list[FlowUser] = []
        self.user_count = 0
        self.think_time_min_s = config.think_time_min_s
        self.think_time_span_s = config.think_time_max_s - config.think_time_min_s
        self.thinks = config.think_time_max_s > 0 and not config.is_open
        self.trace = trace
        # Open model.
        self.schedule = ArrivalSchedule(self.ramp)
        self.next_due: float | None = None
        self.pump_handle: asyncio.TimerHandle | None = None
        self.backlog_limit = config.max_backlog or int(
            min(max(BACKLOG_PER_RPS * self.ramp.peak(), BACKLOG_MIN), BACKLOG_MAX)
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.running = True
        if self.config.is_open:
            self.next_due = self.schedule.next()
            self.pump()
        else:
            self.adjust(0.0)

    def stop(self) -> None:
        self.running = False
        if self.pump_handle is not None:
            self.pump_handle.cancel()
        for user in self.users:
            user.stopping = True

    async def shutdown(self) -> None:
        for state in list(self.states):
            self.close_state(state)
        self.waiting.clear()
        self.pool.close_all()

    def close_state(self, state: FlowState) -> None:
        state.alive = False
        self.states.discard(state)
        if state.handle is not None:
            state.handle.cancel()
        state.gen.close()  # runs the generator's `finally` blocks

    @property
    def active_users(self) -> int:
        return len(self.users) if not self.config.is_open else self.active_iterations

    def swap_interval(self) -> Interval:
        finished = self.interval
        self.interval = Interval(len(self.steps), flow=True)
        return finished

    def planned_iterations(self, offset_s: float) -> float:
        return self.ramp.integral(0.0, offset_s)

    # -- driving generators ------------------------------------------------------------------

    def begin(self, gen: FlowGenerator, done: Callable[[], None] | None = None) -> FlowState:
        state = FlowState(gen, done)
        self.states.add(state)
        self.advance(state)
        return state

    def advance(self, state: FlowState, value: Any = None, error: Exception | None = None) -> None:
        """Resume a generator with an answer (or an error) and act on what it yields next."""
        state.handle = None
        if not state.alive:
            return
        try:
            command = state.gen.send(value) if error is None else state.gen.throw(error)
        except StopIteration:
            self.finished(state)
            return
        except Exception as exc:  # noqa: BLE001 - a bug: stop the run and say so
            self.finished(state)
            self.loop.call_exception_handler(
                {"message": "a flow iteration failed", "exception": exc}
            )
            return
        if type(command) is Send:
            state.command = command
            self.dispatch(state)
        else:
            state.handle = self.loop.call_later(command, self.advance, state)

    def finished(self, state: FlowState) -> None:
        state.alive = False
        self.states.discard(state)
        if state.done is not None:
            state.done()

    def dispatch(self, state: FlowState) -> None:
        """Send the state's request on an idle connection, or queue it until one is free. A
        request that may not be sent twice takes only a connection idle for less than
        UNSAFE_REUSE_IDLE_S: older ones (the stack's bottom) are closed."""
        idle = self.pool.idle
        step: FlowStep = state.command.step  # type: ignore[union-attr]
        idle_since = 0.0 if step.idempotent else clock() - UNSAFE_REUSE_IDLE_S
        while idle:
            conn = idle.pop()
            if conn.transport is None or not conn.reusable:
                continue
            if conn.idle_since < idle_since:
                conn.close()
                continue
            self.send(conn, state)  # type: ignore[arg-type]
            return
        self.waiting.append(state)
        self.refill()

    def send(self, conn: FlowConnection, state: FlowState) -> None:
        command: Send = state.command  # type: ignore[assignment]
        step = command.step
        now = clock()
        if step.index == 0 and now - command.intended > LATE_START_S:
            self.interval.late_starts += 1
        command.sent = now
        conn.user = state
        conn.step = step  # type: ignore[assignment]
        conn.intended = command.intended
        conn.sent_at = now
        conn.busy = True
        conn.received = False
        conn.hops = 0
        conn.uses += 1
        conn.head = None
        conn.head_start = b""
        conn.body = []
        self.in_flight += 1
        conn.transport.write(command.request)  # type: ignore[union-attr]

    # -- closed model ------------------------------------------------------------------------

    def adjust(self, offset_s: float) -> None:
        if not self.running or self.config.is_open or self.exhausted:
            return
        wanted = int(self.ramp.target_at(offset_s) + 0.5)
        while len(self.users) < wanted:
            self.user_count += 1
            user = FlowUser(self.user_count)
            self.users.append(user)
            self.begin(self.user_loop(user))
        while len(self.users) > wanted:
            # The newest users stop after their current iteration.
            self.users.pop().stopping = True

    def user_loop(self, user: FlowUser) -> FlowGenerator:
        number = 0
        while self.running and not user.stopping:
            number += 1
            sent_before = self.sends
            if not (yield from self.iteration(user, number, clock())):
                return
            if self.thinks and self.running and not user.stopping:
                yield self.think()
            elif self.sends == sent_before:
                # Nothing went out (the request could not even be built): let the loop
                # breathe rather than spin through failing iterations.
                yield 0.0

    def think(self) -> float:
        return self.think_time_min_s + random.random() * self.think_time_span_s  # noqa: S311

    # -- open model --------------------------------------------------------------------------

    def pump(self) -> None:
        """Start every iteration whose intended time has come, then sleep until the next."""
        if not self.running or self.exhausted:
            return
        t0 = self.t0
        horizon = clock() - t0 + LOOKAHEAD_S
        due = self.next_due
        while due is not None and due <= horizon and self.running and not self.exhausted:
            self.arrive(t0 + due)
            due = self.schedule.next()
        self.next_due = due
        if due is not None and self.running and not self.exhausted:
            delay = t0 + due - LOOKAHEAD_S - clock()
            self.pump_handle = self.loop.call_later(max(delay, 0.0), self.pump)

    def arrive(self, intended: float) -> None:
        if self.active_iterations >= self.backlog_limit:
            first = self.steps[0]
            self.count_request(first)
            self.record_error(
                first,
                errors.DROPPED,
                f"{first.name}: {self.active_iterations} iterations already under way",
            )
            self.interval.iterations += 1
            self.interval.iterations_failed += 1
            return
        self.user_count += 1
        self.begin(self.iteration(FlowUser(self.user_count), 1, intended))

    # -- iterations --------------------------------------------------------------------------

    def iteration(self, user: FlowUser, number: int, intended: float) -> FlowGenerator:
        """Run the steps once; False when the data set has run out (nothing was sent)."""
        row = self.data.take()
        if row is None:
            self.run_out()
            return False
        context = Context(variables={}, row=row, iteration=number, user=user.number)
        self.active_iterations += 1
        ok = True
        try:
            # The steps, inline rather than in a generator of their own: each level of
            # `yield from` is passed through on every answer.
            for step in self.steps:
                if step.index and self.thinks:
                    yield self.think()
                if not self.running:
                    raise _Abandoned
                step_intended = intended if step.index == 0 else clock()
                if not (yield from self.run_step(user, step, context, step_intended)):
                    ok = False
                    break
        except _Abandoned:
            return True
        finally:
            self.active_iterations -= 1
            if self.exhausted:
                self.run_out()
        interval = self.interval
        value = int((clock() - intended) * 1_000_000.0)
        interval.iteration.record(value)  # type: ignore[union-attr]
        interval.iterations += 1
        if not ok:
            interval.iterations_failed += 1
        return True

    def run_out(self) -> None:
        """A unique data set has no rows left: start nothing more; end once all is done."""
        self.exhausted = True
        if self.pump_handle is not None:
            self.pump_handle.cancel()
        if self.active_iterations == 0 and not self.end_reason:
            self.end_reason = DATA_EXHAUSTED

    def run_step(
        self, user: FlowUser, step: FlowStep, context: Context, intended: float
    ) -> FlowGenerator:
        """One step with its polls; False (after recording the error) when it failed."""
        attempt = 0
        while True:
            attempt += 1
            entry = self.trace_entry(step, attempt)
            try:
                status, head, body = yield from self.request(user, step, context, intended, entry)
            except RequestFailed as exc:
                self.count_request(step)
                self.fail(step, exc.error_class, f"{step.name}: {exc.message}", entry)
                return False
            if status not in step.expect:
                self.flow_status_error(step, status, entry)
                return False
            if step.poll is not None:
                done, seen = step.poll_state(body)
                if not done:
                    if attempt >= step.poll.max_attempts:
                        polls = self.interval.step_polls_exhausted
                        polls[step.index] += 1  # type: ignore[index]
                        message = (
                            f"{step.name}: {step.poll.until_path} was {seen} after "
                            f"{attempt} attempts"
                        )
                        self.fail(step, errors.POLL_EXHAUSTED, message, entry)
                        return False
                    yield step.poll.interval_s
                    if not self.running:
                        raise _Abandoned
                    intended = clock()
                    continue
            return self.after_response(user, step, context, head, body, entry)

    def after_response(
        self,
        user: FlowUser,
        step: FlowStep,
        context: Context,
        headers: bytes,
        body: bytes,
        entry: dict[str, Any] | None,
    ) -> bool:
        if step.check is not None:
            failure = step.check(body)
            if failure is not None:
                self.fail(step, errors.CHECK_FAILED, f"{step.name}: {failure}", entry)
                return False
        if not step.extractors:
            return True
        text_headers: Headers = parse_head(headers) if step.needs_headers else []
        variables = context.variables
        for variable, extractor in step.extractors:
            try:
                variables[variable] = extractor(text_headers, body, user.jar)
            except ExtractionFailed as exc:
                message = f"{step.name}: extract {variable}: {exc}"
                self.fail(step, errors.CHECK_FAILED, message, entry)
                return False
            if entry is not None:
                entry["extracted"][variable] = variables[variable]
        return True

    def fail(self, step: FlowStep, error_class: str, message: str, entry: Any) -> None:
        self.record_error(step, error_class, message)  # type: ignore[arg-type]
        if entry is not None and entry["error"] is None:
            entry["error"] = errors.truncate(message)

    def flow_status_error(self, step: FlowStep, status: int, entry: Any) -> None:
        expected = expected_statuses_text(step.step.expected_statuses)
        self.fail(
            step,
            errors.status_class(status),
            f"{step.name}: expected status {expected}, got {status}",
            entry,
        )

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        user: FlowUser,
        step: FlowStep,
        context: Context,
        intended: float,
        entry: dict[str, Any] | None,
    ) -> FlowGenerator:
        """Send the step's request (following same-origin redirects when asked), record its
        latency and cookies; returns (status, raw head, body) of the final response."""
        try:
            request = step.build(context, user.jar)
        except InvalidRequestTarget as exc:
            raise RequestFailed(errors.PROTOCOL, str(exc)) from exc
        hops = 0
        while True:
            if not self.running:
                raise _Abandoned
            if entry is not None:
                entry = self.trace_request(entry, step, request, hops)
            self.sends += 1
            sent, status, head, body = yield Send(step, request, intended)
            now = clock()
            if b"set-cookie" in head.lower():
                update_jar(user.jar, parse_head(head))
            if entry is not None:
                self.trace_response(entry, status, head, body, now - sent)
            if not 300 <= status < 400 or not self.follow_redirects:
                break
            redirect = self.redirect(step, status, head, hops, user, context)
            if redirect is None:
                break
            request, hops = redirect, hops + 1
        self.record(step, intended, sent, now)
        return status, head, body

    def redirect(
        self,
        step: FlowStep,
        status: int,
        head: bytes,
        hops: int,
        user: FlowUser,
        context: Context,
    ) -> bytes | None:
        """The request for a same-origin redirect to follow, or None."""
        if not self.follow_redirects or not 300 <= status < 400 or hops >= 5:
            return None
        location = next((v for n, v in parse_head(head) if n.lower() == "location"), None)
        if not location:
            return None
        try:
            path = self.target.same_origin_path(location)
        except InvalidRequestTarget as exc:
            raise RequestFailed(errors.PROTOCOL, str(exc)) from exc
        if path is None:
            return None
        method = step.method if step.method in ("GET", "HEAD") else "GET"
        head = f"{method} {path} HTTP/1.1\r\n{step.common}"
        for name, template in step.headers:
            if name.lower() not in ("content-type", "cookie"):
                head += f"{name}: {template.render(context)}\r\n"
        if user.jar:
            head += f"Cookie: {cookie_header(user.jar)}\r\n"
        try:
            return (head + "\r\n").encode("latin-1")
        except UnicodeEncodeError as exc:
            raise RequestFailed(errors.PROTOCOL, f"a header is not Latin-1 text: {exc}") from exc

    def record(self, step: FlowStep, intended: float, sent: float, now: float) -> None:
        # Histogram.record inlined, as in LoadDriver.on_response: a call per value shows.
        interval = self.interval
        value = int((now - (intended if intended < sent else sent)) * 1_000_000.0)
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

    # -- pool and connection callbacks -------------------------------------------------------

    def refill(self) -> None:
        pool = self.pool
        while self.running and pool.connecting < len(self.waiting) and pool.can_open():
            pool.open()

    def release(self, conn: FlowConnection) -> None:  # type: ignore[override]
        if not conn.reusable or conn.transport is None:
            conn.close()
            return
        waiting = self.waiting
        while waiting:
            state = waiting.popleft()
            if state.alive:
                self.send(conn, state)
                return
        conn.idle_since = clock()
        self.pool.idle.append(conn)

    def connection_ready(self, conn: FlowConnection) -> None:  # type: ignore[override]
        self.release(conn)

    def connect_failed(self, error_class: str, message: str) -> None:
        waiting = self.waiting
        while waiting:
            state = waiting.popleft()
            if state.alive:
                self.advance(state, error=RequestFailed(error_class, message))
                break
        self.refill()

    def on_response(self, conn: FlowConnection, status: int) -> None:  # type: ignore[override]
        # Hand the connection back first: the generator's next request (written from this
        # read callback) most likely takes it straight from the idle stack.
        self.in_flight -= 1
        state: FlowState = conn.user
        conn.user = None
        answer = (state.command.sent, status, conn.head or b"", conn.take_body())  # type: ignore[union-attr]
        self.release(conn)
        self.advance(state, answer)

    def on_failure(self, conn: FlowConnection, error_class: str, message: str) -> None:  # type: ignore[override]
        self.in_flight -= 1
        state = conn.user
        conn.user = None
        if state is not None:
            self.advance(state, error=RequestFailed(error_class, message))

    def on_stale(self, conn: FlowConnection) -> None:  # type: ignore[override]
        """A reused connection lost the request before any answer: send it again elsewhere."""
        self.in_flight -= 1
        self.stale_retries += 1
        state = conn.user
        conn.user = None
        if state is not None and state.alive:
            self.dispatch(state)

    def reject_redirect(self, conn: FlowConnection, message: str) -> None:  # type: ignore[override]
        self.on_failure(conn, errors.PROTOCOL, message)

    # -- try once ----------------------------------------------------------------------------

    def trace_entry(self, step: FlowStep, attempt: int) -> dict[str, Any] | None:
        if self.trace is None:
            return None
        entry: dict[str, Any] = {
            "step": step.name, "attempt": attempt, "method": step.method, "url": "",
            "request_headers": {}, "request_body": "", "status": None,
            "response_headers": {}, "body": "", "elapsed_ms": None, "extracted": {},
            "error": None,
        }  # fmt: skip
        self.trace.append(entry)
        return entry

    def trace_request(
        self, entry: dict[str, Any], step: FlowStep, request: bytes, hops: int
    ) -> dict[str, Any]:
        if hops:
            # A redirect: the answer that sent it keeps an entry of its own, before this one
            # (which goes on to collect the final answer, extractions and errors).
            trace = self.trace or []
            position = next(i for i, seen in enumerate(trace) if seen is entry)
            trace.insert(position, {**entry, "extracted": {}})
            entry.update(status=None, response_headers={}, body="", elapsed_ms=None)
        head, _, body = request.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        base = f"{self.target.scheme}://{headers.get('Host', self.target.host_header)}"
        entry.update(
            method=method,
            url=base + target,
            request_headers=headers,
            request_body=body[:TRACE_BODY_CHARS].decode("utf-8", "replace"),
        )
        return entry

    def trace_response(
        self,
        entry: dict[str, Any],
        status: int,
        head: bytes,
        body: bytes,
        elapsed_s: float,
    ) -> None:
        shown: dict[str, str] = {}
        for key, text in parse_head(head):
            shown[key] = f"{shown[key]}, {text}" if key in shown else text
        entry.update(
            status=status,
            response_headers=shown,
            body=body[:TRACE_BODY_CHARS].decode("utf-8", "replace"),
            elapsed_ms=round(elapsed_s * 1000.0, 3),
        )

    async def try_once(self, timeout_s: float) -> None:
        self.running = True
        self.t0 = clock()
        sweeper = self.loop.create_task(self._sweep())
        over: asyncio.Future[None] = self.loop.create_future()
        self.begin(
            self.iteration(FlowUser(1), 1, clock()), lambda: over.done() or over.set_result(None)
        )
        try:
            await asyncio.wait_for(over, timeout_s)
        except TimeoutError:
            self.trace.append(  # type: ignore[union-attr]
                {**_empty_entry(), "error": f"the iteration took longer than {timeout_s:g} s"}
            )
        finally:
            sweeper.cancel()
            self.running = False

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.sweep_timeouts(clock())


def parse_head(head: bytes) -> Headers:
    """The (name, value) pairs of a response's raw head (its status line skipped)."""
    pairs = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


def _empty_entry() -> dict[str, Any]:
    return {
        "step": "", "attempt": 0, "method": "", "url": "", "request_headers": {},
        "request_body": "", "status": None, "response_headers": {}, "body": "",
        "elapsed_ms": None, "extracted": {}, "error": None,
    }  # fmt: skip


def make_flow_driver(loop: asyncio.AbstractEventLoop, config: EngineConfig) -> FlowDriver:
    return FlowDriver(loop, config)


def try_once(config: EngineConfig, *, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Run ONE iteration (user 1, iteration 1, the first data row) and return what each
    request sent and received: one dict per request (see the flow contract for the keys).

    Starts and closes its own event loop, so call it from a thread without one. Works in
    either mode (requests-mode steps run once each, top to bottom). Raises ConfigError for
    a config that does not validate.
    """
    problems = config.validate()
    if problems:
        raise ConfigError(problems)
    from loadtests.engine.runner import new_event_loop

    if config.data_order != SEQUENTIAL:
        config = replace(config, data_order=SEQUENTIAL)  # the first row, whatever the order
    loop = new_event_loop()
    trace: list[dict[str, Any]] = []
    driver = FlowDriver(loop, config, trace=trace)
    try:
        loop.run_until_complete(driver.pool.resolve())
        loop.run_until_complete(driver.try_once(timeout_s))
    finally:
        loop.run_until_complete(driver.shutdown())
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    return trace
