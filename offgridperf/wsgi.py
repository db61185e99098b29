from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "offgridperf.settings")

try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    sys.stderr.write(f"offgridperf: configuration error: {exc}\n")
    raise SystemExit(2) from None
