"""Password guessing is throttled: after AXES_FAILURE_LIMIT wrong passwords for one user from
one address, that pair is locked out for the cool-off, even with the right password, and the
page says so (429, with Retry-After) instead of letting the guesses go on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-right-horse-42"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        "alice", "alice@example.com", PASSWORD, is_staff=True, is_superuser=True
    )


def log_in(client: Client, page: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(page, {"username": "alice", "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_sixth_wrong_password_locks_the_user_out_even_with_the_right_one(
    staff: Any, page: str
) -> None:
    client = Client()
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = log_in(client, page, "wrong-guess")
        assert response.status_code == 200  # the form again, with its error
    response = log_in(client, page, "wrong-guess")
    assert response.status_code == 429

    response = log_in(client, page, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    text = re.sub(r"\s+", " ", response.content.decode())
    assert "locked" in text
    assert "15 minutes" in text
    assert response["Retry-After"] == str(15 * 60)
    assert 'class="card' in text  # the product's page, not a bare line of text


def test_the_lockout_is_per_user_and_address(staff: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "/accounts/login/", "wrong-guess")
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 429

    # The same user from another address, and another user from the same one, still log in.
    other_address = Client()
    assert log_in(other_address, "/accounts/login/", PASSWORD, "10.1.2.3").status_code == 302
    assert logged_in(other_address)
    bob = Client()
    response = bob.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302 and logged_in(bob)


def test_a_right_password_before_the_limit_logs_in_and_forgets_the_failures(staff: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "/accounts/login/", "wrong-guess")
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "/accounts/login/", "wrong-guess").status_code == 200
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_force_login_and_the_login_page_still_work(staff: Any) -> None:
    client = Client()
    client.force_login(staff)
    assert client.get("/").status_code == 200
    assert Client().get("/accounts/login/").status_code == 200
