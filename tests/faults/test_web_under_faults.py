"""The web and the target, as runall starts them, under faults of their own: a database that
refuses connections, and slow clients holding sockets open."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from loadtests.models import LoadTestRun, RunStatus
from tests.faults.conftest import Product, WebSession, wait_for

RECOVERY_S = 60


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
def database_refusing_connections(keep_pid: int) -> Iterator[None]:
    """The test database refuses new connections and loses its open ones, as when its server
    goes away; the test's own connection (`keep_pid`) is kept for its teardown."""
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
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> %s",
                (name, keep_pid),
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
    from django.db import connection

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
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]

    with database_refusing_connections(own_pid):
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
    # The web's access log: no request of the whole scenario was answered with a 500.
    assert '" 500 ' not in product.output()
