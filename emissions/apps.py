from __future__ import annotations

from django.apps import AppConfig


class EmissionsConfig(AppConfig):
    name = "emissions"
    verbose_name = "Emissions reference workload"
