"""A small real HTTP server for flow tests: a login form with CSRF, jobs to poll, an echo.

stdlib http.server on a thread (HTTP/1.1 keep-alive), so a test can read what it saw.

  GET  /login            sets a csrftoken cookie; a form with csrfmiddlewaretoken
  POST /login            needs the cookie and the form's token to match, and password
                         "secret": sets sessionid and redirects (302) to /me; else 403
  GET  /me               200 {"user": name} with a valid sessionid, else 401
  POST /jobs?ready_after=N
                         201 {"id": n, "status": "pending"}, header X-Job-Id, cookie job=n
  GET  /jobs/<n>         {"id": n, "status": "pending"} until the N-th GET, then "done"
  GET  /seen?...         200 {"query": ...}; the query string is kept in `server.seen`
  GET  /text             200 text/plain "order=ORD-42 ok"
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FlowServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FlowHandler)
        self.lock = threading.Lock()
        self.seen: list[str] = []
        self.sessions: dict[str, str] = {}
        self.jobs: dict[int, list[int]] = {}  # id -> [gets so far, ready after]
        self.job_ids = itertools.count(1)
        self.logins = 0

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class FlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: FlowServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass

    def answer(
        self, status: int, body: Any, *, content_type: str = "application/json", **headers: str
    ) -> None:
        payload = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            if name == "Set_Cookie":
                for cookie in value.split("\n"):
                    self.send_header("Set-Cookie", cookie)
            else:
                self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(payload)

    def cookies(self) -> dict[str, str]:
        jar = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name:
                jar[name] = value
        return jar

    def read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/login":
            token = secrets.token_hex(16)
            form = (
                '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
                f'value="{token}"><input name="username"></form>'
            )
            self.answer(
                200, form, content_type="text/html", Set_Cookie=f"csrftoken={token}; Path=/"
            )
        elif url.path == "/me":
            user = self.server.sessions.get(self.cookies().get("sessionid", ""))
            if user is None:
                self.answer(401, {"error": "log in first"})
            else:
                self.answer(200, {"user": user})
        elif url.path.startswith("/jobs/"):
            self.job(int(url.path.rsplit("/", 1)[1]))
        elif url.path == "/seen":
            with self.server.lock:
                self.server.seen.append(url.query)
            self.answer(200, {"query": url.query})
        elif url.path == "/text":
            self.answer(200, "order=ORD-42 ok", content_type="text/plain")
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path == "/login":
            self.login(body)
        elif url.path == "/jobs":
            ready_after = int(parse_qs(url.query).get("ready_after", ["1"])[0])
            with self.server.lock:
                job = next(self.server.job_ids)
                self.server.jobs[job] = [0, ready_after]
            self.answer(
                201, {"id": job, "status": "pending"}, X_Job_Id=str(job), Set_Cookie=f"job={job}"
            )
        else:
            self.answer(404, {"error": "not found"})

    def login(self, body: str) -> None:
        form = {key: values[0] for key, values in parse_qs(body).items()}
        token = self.cookies().get("csrftoken")
        if not token or form.get("csrfmiddlewaretoken") != token:
            self.answer(403, {"error": "CSRF verification failed"})
            return
        if form.get("password") != "secret":
            self.answer(403, {"error": "bad credentials"})
            return
        session = secrets.token_hex(16)
        with self.server.lock:
            self.server.sessions[session] = form.get("username", "")
            self.server.logins += 1
        self.answer(302, {}, Location="/me", Set_Cookie=f"sessionid={session}; Path=/; HttpOnly")

    def job(self, job: int) -> None:
        with self.server.lock:
            state = self.server.jobs.get(job)
            if state is not None:
                state[0] += 1
        if state is None:
            self.answer(404, {"error": "no such job"})
            return
        status = "done" if state[0] >= state[1] else "pending"
        self.answer(200, {"id": job, "status": status, "gets": state[0]})


@contextlib.contextmanager
def flow_server() -> Iterator[FlowServer]:
    server = FlowServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
