from __future__ import annotations

import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.conftest import closed_port, worker_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_it_creates_one_admin_however_often_it_runs(monkeypatch: Any) -> None:
    monkeypatch.delenv("OFFGRIDPERF_ADMIN_PASSWORD", raising=False)
    first, second = StringIO(), StringIO()
    call_command("bootstrap", "--no-static", stdout=first)
    call_command("bootstrap", "--no-static", stdout=second)
    users = get_user_model().objects.filter(username="admin")
    assert users.count() == 1
    admin = users.get()
    assert admin.is_superuser and admin.is_staff
    password = first.getvalue().split("password: ")[1].split()[0]
    assert admin.check_password(password)
    assert "password" not in second.getvalue().split("admin user:")[1].replace(
        "password unchanged", ""
    )


@pytest.mark.django_db
def test_it_takes_the_password_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("OFFGRIDPERF_ADMIN_PASSWORD", "from-the-env-42")
    out = StringIO()
    call_command("bootstrap", "--no-static", stdout=out)
    assert "from-the-env-42" not in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("from-the-env-42")


@pytest.mark.django_db
def test_the_admin_can_log_in_to_the_admin_site(client: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OFFGRIDPERF_ADMIN_PASSWORD", "from-the-env-42")
    call_command("bootstrap", "--no-static", stdout=StringIO())
    # Through the admin's own login form: authentication needs the request (login throttling).
    response = client.post(
        "/admin/login/", {"username": "admin", "password": "from-the-env-42", "next": "/admin/"}
    )
    assert response.status_code == 302
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"offgridperf administration" in response.content


def _bootstrap(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "bootstrap", "--no-static"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_it_creates_a_missing_postgresql_database() -> None:
    name = f"ogp_bootstrap_{uuid.uuid4().hex[:10]}"
    env = worker_env(name)
    try:
        done = _bootstrap(env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"database: created '{name}'" in done.stdout
        assert "database: migrated" in done.stdout
        again = _bootstrap(env)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "database: created" not in again.stdout
    finally:
        with psycopg.connect(_maintenance_url(env["DATABASE_URL"]), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unreachable_database_stops_it_with_one_line_naming_database_url() -> None:
    env = worker_env("offgridperf")
    env["DATABASE_URL"] = f"postgres://someone:hunter2secret@127.0.0.1:{closed_port()}/nowhere"
    done = _bootstrap(env)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: DATABASE_URL: cannot connect to PostgreSQL on 127.0.0.1:")
    assert "as someone" in line and "'nowhere'" in line
    assert "hunter2secret" not in done.stderr + done.stdout


def _maintenance_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"
