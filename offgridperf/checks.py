"""System checks that keep the product from running in a state that would mislead."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_loadtest_allow_list(app_configs: Any, **kwargs: Any) -> list[Any]:
    hosts = settings.LOADTEST_ALLOWED_HOSTS
    if not hosts:
        return [
            Error(
                "LOADTEST_ALLOWED_HOSTS is empty; no load test could run.",
                hint="List the hosts load tests may target, e.g. localhost,127.0.0.1.",
                id="offgridperf.E001",
            )
        ]
    if "*" in hosts:
        return [
            Error(
                "LOADTEST_ALLOWED_HOSTS may not contain '*'; name each target host.",
                id="offgridperf.E002",
            )
        ]
    return []


@register(deploy=True)
def check_embedded_defaults(app_configs: Any, **kwargs: Any) -> list[Any]:
    warnings = []
    if not settings.DATABASE_IS_POSTGRES:
        warnings.append(
            Warning(
                "DATABASE_URL is not set: results go to the embedded SQLite file under var/.",
                id="offgridperf.W001",
            )
        )
    if settings.CELERY_BROKER_URL == "filesystem://":
        warnings.append(
            Warning(
                "CELERY_BROKER_URL is not set: the file-system broker serves one machine only.",
                id="offgridperf.W002",
            )
        )
    return warnings
