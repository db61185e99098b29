from __future__ import annotations

from django.apps import AppConfig


class QueryoptConfig(AppConfig):
    name = "queryopt"
    verbose_name = "Queries"
