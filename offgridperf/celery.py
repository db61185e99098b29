"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "offgridperf.settings")

app = Celery("offgridperf")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("loadgen"))
app.autodiscover_tasks()
