"""API tokens: the plaintext token is shown once, in the body of the page that creates it,
and never travels in a cookie (the `messages` cookie is signed, not encrypted) or the
session; a token an admin revoked stays revoked whatever its owner does."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from loadtests import tokens
from loadtests.models import ApiToken

pytestmark = pytest.mark.django_db

ADD = "/admin/loadtests/apitoken/add/"


@pytest.fixture
def owner(django_user_model: Any) -> Any:
    """A staff user who may make and edit their own tokens, as the token permissions allow."""
    user = django_user_model.objects.create_user("owner", "owner@example.com", "pw-owner-123")
    user.is_staff = True
    user.save()
    codenames = ["add_apitoken", "change_apitoken", "view_apitoken", "view_loadtestrun"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def cookie_texts(response: Any) -> list[str]:
    """Every cookie the response sets, as sent and, for the messages cookie, decoded."""
    texts = []
    for morsel in response.cookies.values():
        texts.append(morsel.OutputString())
        if morsel.key == "messages" and morsel.value:
            decoded = CookieStorage(HttpRequest())._decode(morsel.value)
            texts.append(json.dumps([str(message) for message in decoded or []]))
    return texts


def test_a_new_token_is_shown_once_in_the_page_and_never_in_a_cookie(
    admin_client: Any, admin_user: Any
) -> None:
    response = admin_client.post(ADD, {"user": admin_user.pk, "name": "ci"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    shown = re.search(r'id="new-api-token">(ogp_[A-Za-z0-9_-]+)<', html)
    assert shown, "the page shows the new token"
    token = shown.group(1)
    stored = ApiToken.objects.get()
    assert tokens.digest_of(token) == stored.token_hash
    for text in cookie_texts(response):
        assert token not in text
    session: SessionBase = admin_client.session
    assert token not in json.dumps({key: str(value) for key, value in session.items()})
    # Never again: not on the next page, not on the token's own page.
    for path in ("/admin/", f"/admin/loadtests/apitoken/{stored.pk}/change/"):
        follow = admin_client.get(path)
        assert token not in follow.content.decode()
        for text in cookie_texts(follow):
            assert token not in text


def test_a_revoked_token_stays_revoked_when_its_owner_unticks_revoked(
    client: Any, admin_client: Any, owner: Any
) -> None:
    api_token = ApiToken(user=owner, name="ci")
    token = api_token.set_new_token()
    api_token.save()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/v1/runs/999999/", **auth).status_code == 404  # live: no such run
    admin_client.post(
        "/admin/loadtests/apitoken/",
        {"action": "revoke", "_selected_action": [api_token.pk]},
    )
    assert ApiToken.objects.get().revoked

    client.force_login(owner)
    change = f"/admin/loadtests/apitoken/{api_token.pk}/change/"
    page = client.get(change).content.decode()
    assert 'name="revoked"' not in page  # shown, but read-only
    client.post(change, {"name": "ci"})  # the checkbox unticked: not sent at all
    client.post(change, {"name": "ci", "revoked": ""})
    assert ApiToken.objects.get().revoked
    client.logout()
    response = client.get("/api/v1/runs/999999/", **auth)
    assert response.status_code == 401


def test_the_model_refuses_to_clear_a_revocation(owner: Any) -> None:
    api_token = ApiToken(user=owner, name="ci")
    api_token.set_new_token()
    api_token.revoked = True
    api_token.save()
    api_token.revoked = False
    with pytest.raises(ValidationError, match="A revoked token stays revoked"):
        api_token.save()
    assert ApiToken.objects.get().revoked
