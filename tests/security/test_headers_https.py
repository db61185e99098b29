"""HTTPS deployments turn on HSTS, secure cookies, the SSL redirect and the proxy's SSL header
from the environment; the local setup has none of them; a bad value stops start-up naming
the variable."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.conftest import ROOT

SETTINGS_FILE = Path(ROOT) / "offgridperf" / "settings.py"
HTTPS_ENVIRONMENT = {
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "yes",
    "SECURE_HSTS_PRELOAD": "on",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "CSRF_TRUSTED_ORIGINS": "https://perf.example.com",
}
HTTPS_VARIABLES = [*HTTPS_ENVIRONMENT, "OFFGRIDPERF_ENV_FILE"]


def settings_from(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    """The settings module's values as it computes them from this environment."""
    for name in HTTPS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OFFGRIDPERF_ENV_FILE", "")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_the_local_setup_has_no_https_only_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    values = settings_from(monkeypatch)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert "SECURE_PROXY_SSL_HEADER" not in values


def test_the_https_variables_set_hsts_secure_cookies_the_redirect_and_the_proxy_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = settings_from(monkeypatch, **HTTPS_ENVIRONMENT)
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://perf.example.com"]


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"SECURE_SSL_REDIRECT": "sometimes"}, "SECURE_SSL_REDIRECT"),
        ({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS"),
        ({"SECURE_HSTS_SECONDS": "-1"}, "SECURE_HSTS_SECONDS"),
        ({"SESSION_COOKIE_SECURE": "maybe"}, "SESSION_COOKIE_SECURE"),
        ({"CSRF_COOKIE_SECURE": "2"}, "CSRF_COOKIE_SECURE"),
        ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https"}, "SECURE_PROXY_SSL_HEADER"),
        ({"SECURE_HSTS_INCLUDE_SUBDOMAINS": "1"}, "SECURE_HSTS_INCLUDE_SUBDOMAINS"),
        ({"SECURE_HSTS_SECONDS": "3600", "SECURE_HSTS_PRELOAD": "1"}, "SECURE_HSTS_PRELOAD"),
        ({"CSRF_TRUSTED_ORIGINS": "perf.example.com"}, "CSRF_TRUSTED_ORIGINS"),
    ],
)
def test_a_bad_https_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], named: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        settings_from(monkeypatch, **environment)
    message = str(refused.value)
    assert message.startswith(named)
    assert "\n" not in message


HTTPS_SETTINGS = {
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


@pytest.mark.django_db
@override_settings(**HTTPS_SETTINGS)
def test_behind_a_tls_proxy_plain_http_is_redirected_but_health_probes_are_not(
    client: Any,
) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
@override_settings(**HTTPS_SETTINGS)
def test_behind_a_tls_proxy_pages_send_hsts_and_secure_cookies(
    client: Any, admin_user: Any
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    response = client.get("/accounts/login/", headers=https)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")
    assert response.cookies["csrftoken"]["secure"] is True
    logged_in = client.post(
        "/accounts/login/", {"username": "root", "password": "pw-admin-123"}, headers=https
    )
    assert logged_in.status_code == 302
    assert logged_in.cookies["sessionid"]["secure"] is True
