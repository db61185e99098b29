"""The cache in the configuration `make run` gives a newcomer: no DATABASE_URL, REDIS_URL or
CELERY_BROKER_URL, SQLite and the embedded Redis under var/, every process started by runall.

The target serves the emissions API from two gunicorn workers and the dashboard from two
more: an invalidation made on the Cache page must reach every one of them, and the page's
figures must count what the target's workers did.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, closed_port
from tests.processes import Runall, answers, wait_for

START_TIMEOUT_S = 120
SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
REQUESTS = 24  # sequential connections, spread by the kernel over both target workers

SETUP = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from emissions.models import ActivityBatch

batch = ActivityBatch.objects.create(
    reference="cache-default", organisation="Acme", period="2024-03", status="calculating"
)
admin = User.objects.get(username="admin")
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.create()
print(json.dumps({"batch": batch.pk, "session": session.session_key}))
"""


def default_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env.update(
        OFFGRIDPERF_VAR_DIR=str(var_dir),
        OFFGRIDPERF_LOCAL="1",
        OFFGRIDPERF_ENV_FILE="",
        OFFGRIDPERF_ADMIN_PASSWORD="a-long-test-password-1234",
        DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def default_product(tmp_path: Path) -> Iterator[tuple[Runall, dict[str, object]]]:
    env = default_env(tmp_path / "var")
    manage(env, "bootstrap")  # as make run does: migrations, static files, the admin
    created = json.loads(manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
    env.update(PORT=str(closed_port()), TARGET_PORT=str(closed_port()))
    log = tmp_path / "runall.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runall"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    product = Runall(proc, int(env["PORT"]), int(env["TARGET_PORT"]), log)
    try:
        wait_for(
            lambda: (
                answers(f"{product.web_url}/healthz") and answers(f"{product.target_url}/healthz")
            ),
            START_TIMEOUT_S,
            "runall's start",
        )
        product.descendants()
        yield product, {**created, "database": tmp_path / "var" / "offgridperf.sqlite3"}
    finally:
        product.stop()


def batch_status(product: Runall, batch_id: int) -> str:
    with urllib.request.urlopen(f"{product.target_url}/api/batches/{batch_id}/", timeout=10) as r:
        return json.loads(r.read())["status"]


def statuses(product: Runall, batch_id: int) -> set[str]:
    return {batch_status(product, batch_id) for _ in range(REQUESTS)}


class Browser:
    """The dashboard as the admin: the session made by SETUP, and the cookies pages set
    (CSRF, messages) carried on, redirects included."""

    def __init__(self, base_url: str, session: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        host = urllib.parse.urlsplit(base_url).hostname or ""
        self.jar.set_cookie(_cookie("sessionid", session, host))
        processor = urllib.request.HTTPCookieProcessor(self.jar)
        self.opener = urllib.request.build_opener(processor)

    def get(self, path: str) -> str:
        with self.opener.open(f"{self.base_url}{path}", timeout=30) as response:
            return response.read().decode()

    def submit(self, path: str, form: dict[str, str]) -> str:
        """POST `form` to the page at `path` with its CSRF token; the page it leads to."""
        token = _csrf_token(self.get(path))
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=urllib.parse.urlencode({**form, "csrfmiddlewaretoken": token}).encode(),
            headers={"Referer": f"{self.base_url}{path}"},
        )
        with self.opener.open(request, timeout=30) as response:
            return response.read().decode()


def _cookie(name: str, value: str, host: str) -> http.cookiejar.Cookie:
    return http.cookiejar.Cookie(
        0,
        name,
        value,
        None,
        False,
        host,
        False,
        False,
        "/",
        True,
        False,
        None,
        False,
        None,
        None,
        {},
    )


def _csrf_token(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "the confirmation page has no CSRF token"
    return found.group(1)


def figures_row(page: str, strategy: str) -> list[str]:
    """The numeric cells of a strategy's row on the Cache page."""
    row = re.search(rf"<code>{strategy}:\*</code>(.*?)</tr>", page, re.S)
    assert row, f"the Cache page has no row for {strategy}"
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r'<td class="num">(.*?)</td>', row.group(1), re.S)
    ]


@pytest.mark.slow
def test_an_invalidation_on_the_cache_page_reaches_every_target_worker_and_the_figures_add_up(
    default_product: tuple[Runall, dict[str, object]],
) -> None:
    product, created = default_product
    batch_id, session = int(created["batch"]), str(created["session"])
    # Both target workers cache the batch while it is calculating.
    assert statuses(product, batch_id) == {"calculating"}
    # The calculation ends behind the cache's back: the cached status is served everywhere.
    with sqlite3.connect(created["database"]) as db:
        db.execute("UPDATE emissions_activitybatch SET status = 'done' WHERE id = ?", (batch_id,))
    assert statuses(product, batch_id) == {"calculating"}

    browser = Browser(product.web_url, session)
    page = browser.submit("/cache/batch/invalidate/", {"confirm": "on"})
    assert "Strategy batch invalidated" in page

    assert statuses(product, batch_id) == {"done"}

    # The dashboard's page counts every lookup the target's workers made (each flushes its
    # counts within a second): one shared cache computed the batch once per generation.
    def batch_figures() -> dict[str, int]:
        cells = figures_row(browser.get("/cache/"), "batch")
        return {"hits": _number(cells[2]), "misses": _number(cells[3])}

    wait_for(lambda: sum(batch_figures().values()) >= 3 * REQUESTS, 30, "the target's figures")
    assert batch_figures() == {"hits": 3 * REQUESTS - 2, "misses": 2}
    page = browser.get("/cache/")
    assert "Backend: Redis, embedded" in page
    assert "Every process shares this cache" in page


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))
