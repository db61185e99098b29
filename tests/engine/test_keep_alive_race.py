"""A server closes an idle keep-alive connection after its own timeout, and a request written
just as it does is lost with no answer. An idempotent request is sent again on another
connection; one that may not be sent twice (a POST) must not meet that close at all, so a flow
sends it only on a connection idle for less than UNSAFE_REUSE_IDLE_S."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from loadtests.engine import EngineConfig, Step, run
from loadtests.engine.flow import UNSAFE_REUSE_IDLE_S

# The race made certain: the server drops, unanswered, any request that arrives on a
# connection idle for longer than this since its last answer (as if its close had crossed it).
DROP_AFTER_IDLE_S = UNSAFE_REUSE_IDLE_S + 0.5
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class RacingServer:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.answered: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.connections = 0

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        last_answer = time.monotonic()
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                method = head.split(b" ", 1)[0].decode()
                stale = time.monotonic() - last_answer > DROP_AFTER_IDLE_S
                with self.lock:
                    counts = self.dropped if stale else self.answered
                    counts[method] = counts.get(method, 0) + 1
                if stale:
                    return  # closed with no answer
                conn.sendall(ANSWER)
                last_answer = time.monotonic()


@pytest.fixture
def racing_server() -> Iterator[RacingServer]:
    server = RacingServer()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        with contextlib.suppress(OSError):
            server.sock.close()


def test_a_post_after_a_long_idle_takes_a_new_connection_and_is_never_lost(
    racing_server: RacingServer,
) -> None:
    # One user, a POST then a GET, thinking longer than the server keeps an idle connection
    # before each: the GET finds its connection closed under it and is sent again; the second
    # iteration's POST never goes out on a connection that old.
    think_s = DROP_AFTER_IDLE_S + 0.5
    config = EngineConfig(
        target_base_url=f"http://127.0.0.1:{racing_server.port}",
        mode="flow",
        load_model="closed",
        users=1,
        duration_s=2 * think_s + 1,
        think_time_min_s=think_s,
        think_time_max_s=think_s,
        abort_error_rate_pct=None,
        steps=(
            Step("save", "POST", "/items", body='{"n": 1}', expected_statuses=()),
            Step("look", "GET", "/items", expected_statuses=()),
        ),
    )
    result = run(config)
    assert result.errors == 0 and result.iterations_failed == 0
    assert racing_server.dropped.get("POST", 0) == 0
    assert racing_server.answered["POST"] == 2  # the second after a long idle
    # The GET went out on the old connection and was sent again: the rule is the POST's.
    assert racing_server.dropped.get("GET", 0) >= 1
