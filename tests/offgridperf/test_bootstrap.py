from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


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


def test_it_takes_the_password_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("OFFGRIDPERF_ADMIN_PASSWORD", "from-the-env-42")
    out = StringIO()
    call_command("bootstrap", "--no-static", stdout=out)
    assert "from-the-env-42" not in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("from-the-env-42")


def test_the_admin_can_log_in_to_the_admin_site(client: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OFFGRIDPERF_ADMIN_PASSWORD", "from-the-env-42")
    call_command("bootstrap", "--no-static", stdout=StringIO())
    assert client.login(username="admin", password="from-the-env-42")
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"offgridperf administration" in response.content
