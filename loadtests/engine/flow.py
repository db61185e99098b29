"""Flow mode: each iteration runs the steps top to bottom, carrying variables and cookies.

Built on the requests mode's connections and pool, with one asyncio future per request
instead of the callback hot path: a flow waits for each answer before its next step, which
coroutines say plainly. The requests mode (models.py) is untouched by any of this.

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
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from loadtests.engine import errors
from loadtests.engine.config import (
    DEFAULT_SUCCESS,
    RANDOM,
    SEQUENTIAL,
    UNIQUE,
    ConfigError,
    EngineConfig,
    Step,
    check_value_of,
    data_columns_of,
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
from loadtests.engine.histograms import Histogram
from loadtests.engine.http import (
    IDEMPOTENT_METHODS,
    USER_AGENT,
    FullConnection,
    InvalidRequestTarget,
    Target,
    clock,
    make_check,
)
from loadtests.engine.models import (
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

DATA_EXHAUSTED = "data set exhausted"
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


class _Stale(Exception):
    """A reused connection lost the request before any answer: send it again."""


class _Abandoned(Exception):
    """The run stopped: the iteration ends unrecorded."""


class FlowConnection(FullConnection):
    """Keeps every response's headers and body: extractions and the cookie jar need them."""

    __slots__ = ("headers",)

    def on_message_begin(self) -> None:
        self.location = None
        self.body = []
        self.headers: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 8 and name.lower() == b"location":
            self.location = value


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
        self.expect = frozenset(step.expect_status) or frozenset(DEFAULT_SUCCESS)
        self.check = make_check(step)
        self.latency = Histogram()
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

    def build(self, context: Context, jar: dict[str, str]) -> bytes:
        """The request's bytes for this iteration. Raises InvalidRequestTarget when a
        rendered header value may not be sent."""
        path = self.path.render(context)
        if not is_visible_ascii(path):
            path = quote(path, safe=_PATH_SAFE)
        lines = [self.method, " ", self.prefix, path, " HTTP/1.1\r\n", self.common]
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
        except ValueError:
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
        self.target = Target(config.base_url)
        self.steps = [FlowStep(i, step, config, self.target) for i, step in enumerate(config.steps)]
        self.ramp = Ramp(
            config.stages,
            constant=float(config.rate if config.is_open else config.users),
            duration_s=config.duration_s,
            start=config.start_target,
        )
        self.pool = Pool(
            loop,
            self,
            self.target,
            max_connections=config.max_connections,
            connect_timeout_s=config.timeout_s,
            connection_class=FlowConnection,
            verify_tls=config.verify_tls,
        )
        self.follow_redirects = config.follow_redirects
        self.interval = Interval(len(self.steps), flow=True)
        self.waiting: deque[asyncio.Future[FlowConnection]] = deque()  # type: ignore[assignment]
        self.in_flight = 0
        self.stale_retries = 0
        self.running = False
        self.t0 = 0.0
        self.data = DataFeed(config.data_rows, config.data_order)
        self.exhausted = False
        self.end_reason = ""
        self.active_iterations = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.users: list[FlowUser] = []
        self.user_count = 0
        self.think_min_s = config.think_min_s
        self.think_span_s = config.think_max_s - config.think_min_s
        self.thinks = config.think_max_s > 0 and not config.is_open
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
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close_all()

    @property
    def active_users(self) -> int:
        return len(self.users) if not self.config.is_open else self.active_iterations

    def swap_interval(self) -> Interval:
        finished = self.interval
        self.interval = Interval(len(self.steps), flow=True)
        return finished

    def planned_iterations(self, offset_s: float) -> float:
        return self.ramp.integral(0.0, offset_s)

    def spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.loop.call_exception_handler(
                {"message": "a flow iteration failed", "exception": task.exception()}
            )

    # -- closed model ------------------------------------------------------------------------

    def adjust(self, offset_s: float) -> None:
        if not self.running or self.config.is_open or self.exhausted:
            return
        wanted = int(self.ramp.target_at(offset_s) + 0.5)
        while len(self.users) < wanted:
            self.user_count += 1
            user = FlowUser(self.user_count)
            self.users.append(user)
            user.task = self.spawn(self.user_loop(user))
        while len(self.users) > wanted:
            # The newest users stop after their current iteration.
            self.users.pop().stopping = True

    async def user_loop(self, user: FlowUser) -> None:
        number = 0
        while self.running and not user.stopping:
            number += 1
            if not await self.iteration(user, number, clock()):
                return
            if self.thinks and self.running and not user.stopping:
                await asyncio.sleep(self.think())

    def think(self) -> float:
        return self.think_min_s + random.random() * self.think_span_s  # noqa: S311

    # -- open model --------------------------------------------------------------------------

    def pump(self) -> None:
        """Start every iteration whose intended time has come, then sleep until the next."""
        if not self.running or self.exhausted:
            return
        t0 = self.t0
        horizon = clock() - t0 + LOOKAHEAD_S
        due = self.next_due
        while due is not None and due <= horizon and self.running:
            self.arrive(t0 + due)
            due = self.schedule.next()
        self.next_due = due
        if due is not None and self.running:
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
        self.spawn(self.iteration(FlowUser(self.user_count), 1, intended))

    # -- iterations --------------------------------------------------------------------------

    async def iteration(self, user: FlowUser, number: int, intended: float) -> bool:
        """Run the steps once; False when the data set has run out (nothing was sent)."""
        row = self.data.take()
        if row is None:
            self.run_out()
            return False
        context = Context(variables={}, row=row, iteration=number, user=user.number)
        self.active_iterations += 1
        try:
            ok = await self.run_steps(user, context, intended)
        except _Abandoned:
            return True
        finally:
            self.active_iterations -= 1
            if self.exhausted:
                self.run_out()
        interval = self.interval
        interval.iteration.record(int((clock() - intended) * 1_000_000.0))  # type: ignore[union-attr]
        interval.iterations += 1
        if not ok:
            interval.iterations_failed += 1
        return True

    async def run_steps(self, user: FlowUser, context: Context, intended: float) -> bool:
        for step in self.steps:
            if step.index and self.thinks:
                await asyncio.sleep(self.think())
            if not self.running:
                raise _Abandoned
            step_intended = intended if step.index == 0 else clock()
            if not await self.run_step(user, step, context, step_intended):
                return False
        return True

    def run_out(self) -> None:
        """A unique data set has no rows left: start nothing more; end once all is done."""
        self.exhausted = True
        if self.pump_handle is not None:
            self.pump_handle.cancel()
        if self.active_iterations == 0 and not self.end_reason:
            self.end_reason = DATA_EXHAUSTED

    async def run_step(
        self, user: FlowUser, step: FlowStep, context: Context, intended: float
    ) -> bool:
        """One step with its polls; False (after recording the error) when it failed."""
        attempt = 0
        while True:
            attempt += 1
            entry = self.trace_entry(step, attempt)
            try:
                status, headers, body = await self.request(user, step, context, intended, entry)
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
                    await asyncio.sleep(step.poll.interval_s)
                    if not self.running:
                        raise _Abandoned
                    intended = clock()
                    continue
            return self.after_response(user, step, context, headers, body, entry)

    def after_response(
        self,
        user: FlowUser,
        step: FlowStep,
        context: Context,
        headers: list[tuple[bytes, bytes]],
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
        text_headers: Headers = (
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
            if step.needs_headers
            else []
        )
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
        expected = ", ".join(str(code) for code in sorted(step.step.expect_status)) or "200-399"
        self.fail(
            step,
            errors.status_class(status),
            f"{step.name}: expected status {expected}, got {status}",
            entry,
        )

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self,
        user: FlowUser,
        step: FlowStep,
        context: Context,
        intended: float,
        entry: dict[str, Any] | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send the step's request (following same-origin redirects when asked), record its
        latency and cookies; (status, headers, body) of the final response."""
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
            sent, status, headers, body, location = await self.exchange(step, request, intended)
            now = clock()
            update_jar_bytes(user.jar, headers)
            if entry is not None:
                self.trace_response(entry, status, headers, body, now - sent)
            redirect = self.redirect(step, status, location, hops, user, context)
            if redirect is None:
                break
            request, hops = redirect, hops + 1
        self.record(step, intended, sent, now)
        return status, headers, body

    def redirect(
        self,
        step: FlowStep,
        status: int,
        location: bytes | None,
        hops: int,
        user: FlowUser,
        context: Context,
    ) -> bytes | None:
        """The request for a same-origin redirect to follow, or None."""
        if not self.follow_redirects or not 300 <= status < 400 or not location or hops >= 5:
            return None
        try:
            path = self.target.same_origin_path(location.decode("latin-1"))
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

    async def exchange(
        self, step: FlowStep, request: bytes, intended: float
    ) -> tuple[float, int, list[tuple[bytes, bytes]], bytes, bytes | None]:
        """One request/response on a pooled connection: (sent at, status, headers, body,
        Location). Raises RequestFailed."""
        while True:
            conn = await self.acquire()
            future: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bytes | None]]
            future = self.loop.create_future()
            now = clock()
            if now - intended > LATE_START_S and step.index == 0:
                self.interval.late_starts += 1
            conn.user = future
            conn.step = step  # type: ignore[assignment]
            conn.intended = intended
            conn.sent_at = now
            conn.busy = True
            conn.received = False
            conn.hops = 0
            conn.uses += 1
            self.in_flight += 1
            conn.transport.write(request)  # type: ignore[union-attr]
            try:
                status, headers, body, location = await future
            except _Stale:
                self.stale_retries += 1
                continue
            return now, status, headers, body, location

    async def acquire(self) -> FlowConnection:
        idle = self.pool.idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None and conn.reusable:
                return conn  # type: ignore[return-value]
        while True:
            waiter: asyncio.Future[FlowConnection] = self.loop.create_future()
            self.waiting.append(waiter)
            self.refill()
            conn = await waiter
            if conn.transport is not None and conn.reusable:
                return conn

    def record(self, step: FlowStep, intended: float, sent: float, now: float) -> None:
        interval = self.interval
        start = min(intended, sent)
        latency = int((now - start) * 1_000_000.0)
        interval.latency.record(latency)
        step.latency.record(latency)
        interval.service.record(int((now - sent) * 1_000_000.0))
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
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.pool.idle.append(conn)

    def connection_ready(self, conn: FlowConnection) -> None:  # type: ignore[override]
        self.release(conn)

    def connect_failed(self, error_class: str, message: str) -> None:
        waiting = self.waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RequestFailed(error_class, message))
                break
        self.refill()

    def on_response(self, conn: FlowConnection, status: int) -> None:  # type: ignore[override]
        self.in_flight -= 1
        future = conn.user
        conn.user = None
        result = (status, conn.headers, conn.take_body(), conn.location)
        self.release(conn)
        if future is not None and not future.done():
            future.set_result(result)

    def on_failure(self, conn: FlowConnection, error_class: str, message: str) -> None:  # type: ignore[override]
        self.in_flight -= 1
        future = conn.user
        conn.user = None
        if future is not None and not future.done():
            future.set_exception(RequestFailed(error_class, message))

    def on_stale(self, conn: FlowConnection) -> None:  # type: ignore[override]
        self.in_flight -= 1
        future = conn.user
        conn.user = None
        if future is not None and not future.done():
            future.set_exception(_Stale())

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
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        elapsed_s: float,
    ) -> None:
        shown: dict[str, str] = {}
        for name, value in headers:
            key, text = name.decode("latin-1"), value.decode("latin-1")
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
        try:
            await asyncio.wait_for(self.iteration(FlowUser(1), 1, clock()), timeout_s)
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


def update_jar_bytes(jar: dict[str, str], headers: list[tuple[bytes, bytes]]) -> None:
    """update_jar for raw header pairs, decoding only Set-Cookie ones."""
    cookies = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if len(name) == 10 and name.lower() == b"set-cookie"
    ]
    if cookies:
        update_jar(jar, cookies)


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
