"""Local HTTP target servers for tests and benchmarks.

A small asyncio server (httptools parser, uvloop when present) that runs in a subprocess, so
that a test can freeze or kill it without freezing itself. Routes are path-based so one
server serves every case:

  /ok                 200, small text body
  /json               200, {"status": "ok", "data": {"id": 1}}
  /delay?ms=20        200 after `ms` milliseconds (a thread's sleep: sub-millisecond accurate)
  /status/NNN         status NNN
  /reset              closes the socket with a TCP reset, no response
  /hang               never answers
  /chunked            200 with a chunked body ("hello, chunked world")
  /eof                200 without Content-Length: the body ends when the server closes
  /close              200 with `Connection: close`
  /redirect           302 to /ok
  /redirect-to?location=L  302 with `Location: L`, as given (raw: spaces, controls and all)
  /malformed          JSON list of the request targets this server received that were not
                      visible ASCII, or whole requests it could not parse (both as latin-1)
  /bytes?n=1000       200 with n bytes of body
  /echo               200, JSON of the request's method, path, headers and body
  /expect-header?name=N&sha256=H
                      200 when the request's header N has a value whose SHA-256 is H, else
                      403: proves what was sent without the value appearing in the request line
  /freeze?ms=1000     blocks the whole server for `ms` milliseconds, then answers 200
  /idle-close         answers a connection's first request (keep-alive), then closes the
                      connection on any later request without answering: what a client sees
                      when a server drops an idle keep-alive connection as it sends

`--threads` serves from a thread per connection instead, for latency accuracy: /delay sleeps
to just short of its deadline, then spins to it and answers from the same thread, with no
event-loop hand-off (every other path answers like /ok).

`--freeze-every S --freeze-ms MS` blocks the whole process (time.sleep on its only event-loop
thread) for MS milliseconds every S seconds: the stall that coordinated-omission correction
must see.

`--tls-cert FILE --tls-key FILE` serves https with that certificate chain and key (PEM).

  python tests/targets.py --port 0 [--freeze-every 3 --freeze-ms 1000]   # prints the port
  with target_server() as base_url: ...                                  # in tests
  with target_server(tls_cert=cert, tls_key=key) as base_url: ...        # https://...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

import httptools

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 15.0

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "text/plain",
    extra: str = "",
    keep_alive: bool = True,
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
        f"{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
    )
    return head.encode("latin-1") + body


OK = response(200, b"ok\n")
JSON_BODY = json.dumps({"status": "ok", "data": {"id": 1}}).encode()
JSON = response(200, JSON_BODY, content_type="application/json")
NOT_FOUND = response(404, b"not found\n")
REDIRECT = response(302, b"", extra="Location: /ok\r\n")
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"6\r\nhello,\r\n8\r\n chunked\r\n7\r\n world!\r\n0\r\n\r\n"
)
EOF_BODY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close\n"
CLOSE = response(200, b"closing\n", keep_alive=False)
VISIBLE_ASCII = re.compile(rb"[\x21-\x7e]+")


class TargetProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools and answer by path."""

    def __init__(self, server: TargetServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.server.malformed.append(data[:200].decode("latin-1"))
            self.send(response(400, b"bad request\n", keep_alive=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        path = parsed.path.decode("latin-1")
        query = parse_qs(parsed.query.decode("latin-1")) if parsed.query else {}
        method = self.parser.get_method().decode("latin-1")
        self.requests += 1
        if not VISIBLE_ASCII.fullmatch(self.url):
            self.server.malformed.append(self.url.decode("latin-1"))
        self.route(method, path, query)

    def send(self, payload: bytes, *, head_only: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if head_only:
            payload = payload.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        self.transport.write(payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        head_only = method == "HEAD"
        if path == "/ok":
            self.send(OK, head_only=head_only)
        elif path == "/json":
            self.send(JSON, head_only=head_only)
        elif path == "/delay":
            self.delay(float(query.get("ms", ["20"])[0]))
        elif path.startswith("/status/"):
            self.send(self.status(path), head_only=head_only)
        elif path == "/reset":
            self.reset()
        elif path == "/hang":
            pass
        elif path == "/chunked":
            self.send(CHUNKED)
        elif path == "/eof":
            self.send(EOF_BODY)
            self.close()
        elif path == "/close":
            self.send(CLOSE)
            self.close()
        elif path == "/redirect":
            self.send(REDIRECT)
        elif path == "/redirect-to":
            self.send(response(302, extra=f"Location: {query['location'][0]}\r\n"))
        elif path == "/malformed":
            self.send(response(200, json.dumps(self.server.malformed).encode()))
        elif path == "/bytes":
            self.send(response(200, b"x" * int(query.get("n", ["1000"])[0])))
        elif path == "/echo":
            self.send(self.echo(method, path))
        elif path == "/expect-header":
            self.send(self.expect_header(query))
        elif path == "/idle-close":
            if self.requests == 1:
                self.send(OK)
            else:
                self.close()
        elif path == "/freeze":
            time.sleep(float(query.get("ms", ["1000"])[0]) / 1000.0)
            self.send(OK)
        else:
            self.send(NOT_FOUND)

    @staticmethod
    def status(path: str) -> bytes:
        try:
            code = int(path.rsplit("/", 1)[1])
        except ValueError:
            return NOT_FOUND
        return response(code, f"status {code}\n".encode())

    def echo(self, method: str, path: str) -> bytes:
        payload = {
            "method": method,
            "url": self.url.decode("latin-1"),
            "path": path,
            "headers": {name.lower(): value for name, value in self.headers},
            "body": b"".join(self.body).decode("utf-8", "replace"),
        }
        return response(200, json.dumps(payload).encode(), content_type="application/json")

    def expect_header(self, query: dict[str, list[str]]) -> bytes:
        name = query.get("name", [""])[0].lower()
        values = [value for header, value in self.headers if header.lower() == name]
        digest = hashlib.sha256(values[0].encode("latin-1")).hexdigest() if values else ""
        matched = len(values) == 1 and digest == query.get("sha256", [""])[0]
        return response(200, b"ok\n") if matched else response(403, b"unexpected header\n")

    def delay(self, ms: float) -> None:
        # asyncio's timers wake up to a millisecond late; a thread's sleep is far closer, and
        # the accuracy benchmark measures the generator against exactly this delay.
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.server.sleepers, time.sleep, ms / 1000.0)
        future.add_done_callback(lambda _: self.send(OK))

    def reset(self) -> None:
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends a RST instead of a FIN, a genuine "connection reset".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class TargetServer:
    """The listening socket plus the periodic whole-process freeze."""

    def __init__(
        self,
        freeze_every_s: float = 0.0,
        freeze_ms: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.freeze_every_s = freeze_every_s
        self.freeze_ms = freeze_ms
        self.ssl_context = ssl_context
        self.sleepers = ThreadPoolExecutor(max_workers=512, thread_name_prefix="delay")
        self.malformed: list[str] = []

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: TargetProtocol(self),
            host,
            port,
            backlog=4096,
            reuse_address=True,
            ssl=self.ssl_context,
        )
        chosen = server.sockets[0].getsockname()[1]
        print(chosen, flush=True)
        if self.freeze_every_s > 0 and self.freeze_ms > 0:
            loop.call_later(self.freeze_every_s, self.freeze, loop)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        server.close()
        self.sleepers.shutdown(wait=False, cancel_futures=True)

    def freeze(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(self.freeze_every_s, self.freeze, loop)
        time.sleep(self.freeze_ms / 1000.0)


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def serve_threads(host: str, port: int) -> None:
    """The --threads server: a blocking thread per connection."""
    # Short GIL slices: a thread spinning to its deadline must not hold up the others.
    sys.setswitchinterval(0.0001)
    listener = socket.create_server((host, port), backlog=1024)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()


def _serve_connection(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffered = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            arrived = time.perf_counter()
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1")
            if target.startswith("/delay"):
                query = parse_qs(target.partition("?")[2])
                _sleep_until(arrived + float(query.get("ms", ["20"])[0]) / 1000.0)
            conn.sendall(OK)


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter() - 0.002
    if remaining > 0:
        time.sleep(remaining)
    while time.perf_counter() < deadline:
        time.sleep(0)  # spin, but let go of the GIL so that other connections keep time too


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local HTTP target server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--freeze-every", type=float, default=0.0, metavar="S")
    parser.add_argument("--freeze-ms", type=float, default=0.0, metavar="MS")
    parser.add_argument("--threads", action="store_true", help="precise /delay, see above")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve https: certificate chain, PEM")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key, PEM")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert and args.threads:
        parser.error("--threads serves plain http only")
    if args.threads:
        serve_threads(args.host, args.port)
        return 0
    context = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    server = TargetServer(args.freeze_every, args.freeze_ms, context)
    loop = new_event_loop()
    try:
        loop.run_until_complete(server.serve(args.host, args.port))
    finally:
        loop.close()
    return 0


# -- helpers for tests and benchmarks ----------------------------------------------------


def closed_port() -> int:
    """A loopback port with nothing listening on it (for connect_refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_target(
    *,
    freeze_every_s: float = 0.0,
    freeze_ms: float = 0.0,
    cpu: int | None = None,
    threads: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a target server subprocess; returns it and its base URL. Stop it yourself.

    With `tls_cert` and `tls_key` (PEM files) it serves https, and the URL says so.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
    if threads:
        command.append("--threads")
    if freeze_every_s and freeze_ms:
        command += ["--freeze-every", str(freeze_every_s), "--freeze-ms", str(freeze_ms)]
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("give tls_cert and tls_key together")
    if tls_cert is not None:
        command += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        stop_target(proc)
        raise RuntimeError(f"the target server did not start (printed {line!r})")
    scheme = "https" if tls_cert is not None else "http"
    return proc, f"{scheme}://127.0.0.1:{int(line)}"


def stop_target(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def target_server(
    *,
    freeze_every_s: float = 0.0,
    freeze_ms: float = 0.0,
    cpu: int | None = None,
    threads: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> Iterator[str]:
    """A target server in a subprocess for the duration of the block; yields its base URL."""
    proc, base_url = start_target(
        freeze_every_s=freeze_every_s,
        freeze_ms=freeze_ms,
        cpu=cpu,
        threads=threads,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    try:
        yield base_url
    finally:
        stop_target(proc)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
