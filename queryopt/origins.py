"""Which origins are the tool's own: its views and tasks (and Django's, Celery's), as opposed to
the service under test's. One rule, in Python and as a database filter."""

from __future__ import annotations

from django.db.models import Q

# Top-level packages whose views and tasks are this tool's, not a target's.
OWN_PACKAGES = (
    "offgridperf", "loadtests", "profiling", "queryopt", "django", "django_celery_beat", "celery",
    "axes",
)  # fmt: skip


def is_own(origin: str) -> bool:
    """'GET loadtests.views.run' (a view, after its method) or 'loadtests.tasks.execute_run' (a
    task) is the tool's own; 'GET emissions.api_views.batch' is not."""
    return any(
        origin.startswith(f"{package}.") or f" {package}." in origin for package in OWN_PACKAGES
    )


def own_q() -> Q:
    """is_own on an `origin` column, in the database."""
    found = Q()
    for package in OWN_PACKAGES:
        found |= Q(origin__startswith=f"{package}.") | Q(origin__contains=f" {package}.")
    return found
