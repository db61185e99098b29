"""A Django project that is not offgridperf: it installs the agent as any team would."""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = "third-party-project-test-key-not-secret"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["offgridperf_agent", "shop"]
MIDDLEWARE = ["offgridperf_agent.middleware.AgentMiddleware"]
if os.environ.get("SHOP_AGENT") == "0":  # the benchmark's plain target: no agent at all
    INSTALLED_APPS.remove("offgridperf_agent")
    MIDDLEWARE = []
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ["SHOP_DATABASE"]),
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

OFFGRIDPERF_AGENT_REDIS_URL = os.environ["SHOP_AGENT_REDIS_URL"]
OFFGRIDPERF_AGENT_KEY = os.environ["SHOP_AGENT_KEY"]
