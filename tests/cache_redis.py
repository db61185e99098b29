"""A private Redis server for tests that stop and restart it (degraded mode), and helpers."""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """redis-server on its own loopback port, no persistence; stop() and start() at will."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def caches(self) -> dict[str, Any]:
        """settings.CACHES pointed at this server, with short timeouts."""
        caches = copy.deepcopy(settings.CACHES)
        default = caches["default"]
        default["LOCATION"] = self.url
        default["OPTIONS"]["SOCKET_CONNECT_TIMEOUT"] = 0.5
        default["OPTIONS"]["SOCKET_TIMEOUT"] = 0.5
        # No retries: an operation fails as soon as the server does not answer.
        default["OPTIONS"]["CONNECTION_POOL_KWARGS"]["retry"] = Retry(NoBackoff(), 0)
        return caches

    def pause(self, seconds: float) -> None:
        """Make the server unresponsive for a while, keeping its data (CLIENT PAUSE)."""
        import redis

        redis.Redis(port=self.port).execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def command_calls(self, command: str) -> int:
        """How many times the server ran `command` (from INFO commandstats)."""
        import redis

        stats = redis.Redis(port=self.port).info("commandstats")
        return int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0))


@contextmanager
def private_redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
