"""The web and the target, as runall starts them, under faults of their own: a database that
refuses connections, and slow clients holding sockets open."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import psycopg
import pytest

from loadtests.models import LoadTestRun, RunStatus
from tests.faults.conftest import Product, WebSession, wait_for

RECOVERY_S = 60
SLOW_CLIENTS = 40
HEALTH_PROBES = 20


@dataclass(frozen=True)
class Answer:
    status: int | str
    content_type: str
    retry_after: str | None
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body)


def fetch(url: str, opener: urllib.request.OpenerDirector | None = None) -> Answer:
    """GET `url`; a status of "timeout" or the error's name when there was no answer."""
    open_url = (opener or urllib.request.build_opener()).open
    try:
        with open_url(url, timeout=15) as response:
            headers, status, body = response.headers, response.status, response.read()
    except urllib.error.HTTPError as exc:
        headers, status, body = exc.headers, exc.code, exc.read()
    except OSError as exc:
        return Answer(type(exc).__name__, "", None, b"")
    return Answer(status, headers.get("Content-Type", ""), headers.get("Retry-After"), body)


@contextlib.contextmanager
def database_refusing_connections() -> Iterator[None]:
    """The test database refuses new connections and loses its open ones, as when its server
    goes away; this test process's own connections are kept, for its teardown."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    name = connection.settings_dict["NAME"]
    admin = psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    try:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            own_ports = [conn.laddr.port for conn in psutil.Process().net_connections(kind="tcp")]
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND NOT coalesce(client_port = ANY(%s), false)",
                (name, own_ports),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        admin.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_web_and_the_target_answer_503_naming_the_database_while_it_refuses_connections(
    ready_product: Product, web: WebSession
) -> None:
    product = ready_product
    run = LoadTestRun.objects.create(
        name="outage", config={"duration_s": 1}, status=RunStatus.PASSED, planned_duration_s=1
    )
    page = f"{product.web_url}/"
    api = f"{product.web_url}/api/v1/runs/{run.pk}/"
    target_api = f"{product.target_url}/api/batches/"
    health = [f"{product.web_url}/healthz", f"{product.target_url}/healthz"]

    def logged_in(url: str) -> Answer:
        return fetch(url, web.opener)

    assert [logged_in(page).status, logged_in(api).status, fetch(target_api).status] == [200] * 3
    log_before = len(product.output())

    with database_refusing_connections():
        # Twice: the first request meets the broken connections, the next ones the outage.
        for _ in range(2):
            html = logged_in(page)
            assert (html.status, html.content_type.split(";")[0]) == (503, "text/html")
            assert b"database is unavailable" in html.body
            assert html.retry_after is not None and int(html.retry_after) > 0
            for answer in (logged_in(api), fetch(target_api)):
                assert (answer.status, answer.content_type) == (503, "application/json")
                assert "database is unavailable" in answer.json()["error"]
                assert answer.retry_after is not None
            for url in health:
                report = fetch(url)
                assert report.status == 503
                assert report.json()["down"] == ["database"]
            # With a session cookie too: the session cannot be loaded, and it says so.
            assert logged_in(health[0]).json()["down"] == ["database"]

    def all_back() -> bool:
        answers = [logged_in(page), logged_in(api), fetch(target_api)]
        answers += [fetch(url) for url in health]
        return all(answer.status == 200 for answer in answers)

    wait_for(all_back, RECOVERY_S, "every page answering 200 once the database is back")
    # The web's access log: no request since the outage began was answered with a 500.
    assert '" 500 ' not in product.output()[log_before:]


@contextlib.contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that send a request's headers a line a second and never finish
    them (slowloris)."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    stop = threading.Event()

    def trickle() -> None:
        line = 0
        while not stop.wait(1.0):
            line += 1
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(f"X-Slow-{line}: still coming\r\n".encode())

    for sock in sockets:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    thread = threading.Thread(target=trickle, name="slowloris", daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join()
        for sock in sockets:
            sock.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_web_keeps_answering_health_probes_with_40_slow_clients_holding_sockets(
    ready_product: Product,
) -> None:
    product = ready_product
    with slow_clients(product.port, SLOW_CLIENTS):
        time.sleep(2)  # every slow client has sent part of its headers by now
        statuses = []
        for _ in range(HEALTH_PROBES):
            try:
                with urllib.request.urlopen(f"{product.web_url}/healthz", timeout=2) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError as exc:
                statuses.append(type(exc).__name__)
            time.sleep(0.1)
    assert statuses == [200] * HEALTH_PROBES
