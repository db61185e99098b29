"""A TCP listener that speaks just enough of PostgreSQL's protocol to ask a client for its
password in clear text, and records what arrives: the stand-in for a server an attacker runs.

`FakePostgres()` answers: it declines SSL and GSS encryption, asks for a cleartext password
after the startup message, records the password message and refuses the login.
`FakePostgres(silent=True)` accepts connections and never says a word, like a port whose
service hangs."""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
AUTH_CLEARTEXT = struct.pack("!cii", b"R", 8, 3)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _error_response(message: str) -> bytes:
    fields = b"SFATAL\0C28P01\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


class FakePostgres:
    def __init__(self, *, silent: bool = False) -> None:
        self.silent = silent
        self.connections = 0
        self.passwords: list[str] = []
        self._open: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def password_received(self) -> bool:
        return bool(self.passwords)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            if not self.silent:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            while True:
                length, code = struct.unpack("!ii", _read_exactly(conn, 8))
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    conn.sendall(b"N")
                    continue
                _read_exactly(conn, length - 8)  # the startup parameters
                break
            conn.sendall(AUTH_CLEARTEXT)
            kind = _read_exactly(conn, 1)
            (size,) = struct.unpack("!i", _read_exactly(conn, 4))
            body = _read_exactly(conn, size - 4)
            if kind == b"p":
                self.passwords.append(body.rstrip(b"\0").decode(errors="replace"))
            conn.sendall(_error_response("password authentication failed"))
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stopped.set()
        self._server.close()
        self._thread.join(timeout=2)
        for conn in self._open:
            conn.close()

    def __enter__(self) -> FakePostgres:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
