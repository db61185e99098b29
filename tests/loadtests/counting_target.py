"""A target that notes when each request arrived, so that a test can compare what a run
recorded with what the target received, and see whether any load came after the run's end.

It serves from threads of the test process (keep-alive, one thread per connection): enough
for the modest rates of fault tests, and its record needs no round trip to read."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CountingTarget:
    """Answers every GET with 200 "ok"; `arrivals` holds each request's time.time()."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the engine's pool expects

            def do_GET(self) -> None:
                with target._lock:
                    target.arrivals.append(time.time())
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def count_after(self, moment: float) -> int:
        """Requests that arrived after `moment` (a time.time())."""
        with self._lock:
            return sum(1 for arrived in self.arrivals if arrived > moment)

    def __enter__(self) -> CountingTarget:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
