"""The web's entry point under runall and in production: gunicorn's asyncio worker reads each
request's headers without holding a thread, so slow clients cost a coroutine each rather than
one of a few threads; Django then serves the request in a thread of its own."""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "offgridperf.settings")

try:
    application = get_asgi_application()
except ImproperlyConfigured as exc:
    sys.stderr.write(f"offgridperf: configuration error: {exc}\n")
    raise SystemExit(2) from None
