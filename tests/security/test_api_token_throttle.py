"""Guessing API tokens is throttled per client address: after API_TOKEN_FAILURE_LIMIT bad
tokens within API_TOKEN_FAILURE_WINDOW_S, the address gets 429 JSON with Retry-After, even
with a right token, until the window ends; other addresses are not affected."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client

from loadtests.models import ApiToken

pytestmark = pytest.mark.django_db

BAD = "ogp_" + "x" * 43


@pytest.fixture
def token(django_user_model: Any) -> str:
    user = django_user_model.objects.create_user("ci", "ci@example.com", "pw-ci-12345")
    # Reading a run needs its view permission: a 404 then proves the token was accepted.
    user.user_permissions.add(Permission.objects.get(codename="view_loadtestrun"))
    api_token = ApiToken(user=user, name="ci")
    value = api_token.set_new_token()
    api_token.save()
    return value


def get_run(token: str, address: str = "127.0.0.1") -> Any:
    return Client().get(
        "/api/v1/runs/1/", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=address
    )


def test_a_hundred_bad_tokens_get_429_after_the_limit_even_for_the_right_token(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    limit = settings.API_TOKEN_FAILURE_LIMIT
    assert limit == 10
    statuses = [get_run(BAD).status_code for _ in range(100)]
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}

    response = get_run(token)
    assert response.status_code == 429
    assert "Too many invalid API tokens" in response.json()["error"]
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= settings.API_TOKEN_FAILURE_WINDOW_S
    assert any(
        "API token" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records
    )
    assert BAD not in caplog.text

    # Another address is not locked: the right token works there.
    assert get_run(token, "10.9.8.7").status_code == 404  # no run 1: but authenticated


def test_right_tokens_are_never_counted(token: str) -> None:
    for _ in range(settings.API_TOKEN_FAILURE_LIMIT * 2):
        assert get_run(token).status_code == 404
    assert get_run(BAD).status_code == 401
