"""Connections to the target, capped at max_connections and reused while they stay open."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING

from loadtests.engine import errors
from loadtests.engine.http import Connection, Target

if TYPE_CHECKING:
    from loadtests.engine.loadshapes import LoadDriver


class Pool:
    """Idle connections ready for a request, plus the bookkeeping to open more.

    The load model takes idle connections straight from `idle` (a list used as a stack, so
    the most recently used, warm connection goes first) and hands them back with
    `model.release`. When it needs more it calls `open()`; the pool calls the model back with
    `connection_ready(conn)` or `connect_failed(error_class, message)`.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        model: LoadDriver,
        target: Target,
        *,
        max_connections: int,
        connect_timeout_s: float,
        connection_class: type[Connection],
        verify_tls: bool = True,
    ) -> None:
        self.loop = loop
        self.model = model
        self.target = target
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.connection_class = connection_class
        self.idle: list[Connection] = []
        self.open_connections: set[Connection] = set()
        self.connecting = 0
        self.connects = 0
        self.address: str = target.host
        self.ssl_context = _ssl_context(verify_tls) if target.tls else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def count(self) -> int:
        """Connections open or being opened."""
        return len(self.open_connections) + self.connecting

    def can_open(self) -> bool:
        return self.count < self.max_connections

    async def resolve(self) -> None:
        """Resolve the host once, so that reconnecting never waits for DNS."""
        try:
            infos = await self.loop.getaddrinfo(
                self.target.host, self.target.port, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # every connect will then fail and say why
        if infos:
            self.address = infos[0][4][0]

    def open(self) -> None:
        if self.closed:
            return
        self.connecting += 1
        self.connects += 1
        task = self.loop.create_task(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        conn = self.connection_class(self)
        target = self.target
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn,
                    self.address,
                    target.port,
                    ssl=self.ssl_context,
                    server_hostname=target.host if self.ssl_context else None,
                ),
                self.connect_timeout_s,
            )
        except asyncio.CancelledError:
            self.connecting -= 1
            # The connect may have completed just before the cancel landed: an open transport
            # left behind would leak (and warn when collected).
            conn.close()
            raise
        except (OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
            self.connecting -= 1
            self.model.connect_failed(*errors.classify_connect_error(exc))
            return
        self.connecting -= 1
        if self.closed:
            conn.close()
            return
        self.open_connections.add(conn)
        self.model.connection_ready(conn)

    def forget(self, conn: Connection) -> None:
        """Drop a connection that closed or failed; idempotent."""
        if conn.forgotten:
            return
        conn.forgotten = True
        self.open_connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self.model.connection_gone()

    def busy_connections(self) -> list[Connection]:
        return [conn for conn in self.open_connections if conn.busy]

    def close_all(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.open_connections):
            conn.close()
        self.idle.clear()


def _ssl_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
