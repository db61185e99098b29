"""Who may see what: one `view_*` permission rule per area of the product, the 403 page that
says which permission is missing and whom to ask, and the documented groups `bootstrap`
creates (viewers, engineers, admins).

Areas are guarded where their URLs are declared (`guard` in each app's urls.py), so a new page
of an area is covered without its view remembering a decorator. The HTTP API authenticates
tokens inside its views, so it checks the same permissions there (loadtests/api.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern

VIEW_DEFINITIONS = "loadtests.view_loadtestdefinition"
VIEW_RUNS = "loadtests.view_loadtestrun"
VIEW_QUERIES = "queryopt.view_queryshape"
VIEW_PROFILES = "profiling.view_profilecapture"
VIEW_CACHE = "offgridperf.view_cache"

VIEWERS, ENGINEERS, ADMINS = "viewers", "engineers", "admins"
# Apps whose view_* permissions make up "seeing the product".
AREA_APPS = ("loadtests", "queryopt", "profiling", "offgridperf")
# Tokens are personal: seeing them is the engineers' token permission, not a viewer's.
NOT_FOR_VIEWERS = ("loadtests.view_apitoken",)
# What engineers may do beyond seeing: run, definitions, capture, query targets, tokens.
ENGINEER_ACTIONS = (
    "loadtests.add_loadtestrun",
    "loadtests.change_loadtestrun",
    "loadtests.change_alert",
    "profiling.acknowledge_monitoralert",
    "loadtests.add_loadtestdefinition",
    "loadtests.change_loadtestdefinition",
    "loadtests.delete_loadtestdefinition",
    "loadtests.add_loadteststep",
    "loadtests.change_loadteststep",
    "loadtests.delete_loadteststep",
    "loadtests.add_loadteststage",
    "loadtests.change_loadteststage",
    "loadtests.delete_loadteststage",
    "loadtests.add_dataset",
    "loadtests.change_dataset",
    "loadtests.delete_dataset",
    "loadtests.add_tag",
    "loadtests.change_tag",
    "loadtests.add_apitoken",
    "loadtests.change_apitoken",
    "loadtests.view_apitoken",
    "queryopt.add_querytarget",
    "queryopt.change_querytarget",
    "queryopt.delete_querytarget",
    "queryopt.add_queryplan",
    "profiling.add_profilecapture",
)


@dataclass(frozen=True)
class Area:
    key: str
    label: str
    url_name: str
    permissions: tuple[str, ...]


AREAS = (
    Area("loadtests", "Load tests", "home", (VIEW_DEFINITIONS, VIEW_RUNS)),
    Area("profiles", "Profiles", "profiling:index", (VIEW_PROFILES,)),
    Area("queries", "Queries", "queryopt:index", (VIEW_QUERIES,)),
    Area("cache", "Cache", "cache", (VIEW_CACHE,)),
)


def missing(user: Any, permissions: Iterable[str]) -> list[str]:
    """The permissions of `permissions` that `user` lacks, in order."""
    return [permission for permission in permissions if not user.has_perm(permission)]


def visible_areas(user: Any) -> list[Area]:
    return [area for area in AREAS if not missing(user, area.permissions)]


def whom_to_ask() -> list[str]:
    """Who grants permissions: the configured contact, else the active admins by username."""
    contact = settings.ACCESS_CONTACT
    if contact:
        return [contact]
    users = get_user_model().objects.filter(is_active=True)
    admins = users.filter(Q(is_superuser=True) | Q(groups__name=ADMINS)).distinct()
    return list(admins.order_by("username").values_list("username", flat=True)[:20])


def no_access(request: HttpRequest, permissions: list[str], status: int = 403) -> HttpResponse:
    """The page that names the missing permissions and whom to ask for them."""
    context = {
        "missing": [{"codename": name, "label": _label(name)} for name in permissions],
        "ask": whom_to_ask(),
        "areas": visible_areas(request.user),
    }
    return render(request, "offgridperf/no_access.html", context, status=status)


def _label(permission: str) -> str:
    app_label, _, codename = permission.partition(".")
    found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    return found.name if found else ""


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: a PermissionDenied raised with a permission's name names it; others say
    only that this action needs a permission."""
    named = str(exception or "")
    return no_access(request, [named] if named.count(".") == 1 and " " not in named else [])


def requires(*permissions: str) -> Callable[[Callable[..., HttpResponse]], Any]:
    """Decorate a view: a user lacking one of `permissions` gets the no-access page."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            lacking = missing(request.user, permissions)
            if lacking:
                return no_access(request, lacking)
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def guard(permissions: str | tuple[str, ...], patterns: list[Any]) -> list[Any]:
    """`patterns` with every view behind `permissions` (a URLPattern's callback is wrapped)."""
    needed = (permissions,) if isinstance(permissions, str) else permissions
    for pattern in patterns:
        if not isinstance(pattern, URLPattern):
            raise TypeError("guard() takes path() entries, not include()")
        pattern.callback = requires(*needed)(pattern.callback)
    return patterns


def overview(load_tests_overview: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The home page: the load tests' overview for whoever may see them, else the list of the
    areas this user may see (which can be none) and whom to ask for more."""

    @wraps(load_tests_overview)
    def home(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not missing(request.user, AREAS[0].permissions):
            return load_tests_overview(request, *args, **kwargs)
        context = {"areas": visible_areas(request.user), "ask": whom_to_ask()}
        return render(request, "offgridperf/areas.html", context)

    return home


def denied(user: Any, permission: str) -> None:
    """Raise PermissionDenied naming `permission` when `user` lacks it (for handler403)."""
    if not user.has_perm(permission):
        raise PermissionDenied(permission)


# -- groups ---------------------------------------------------------------------------------


def group_permissions() -> dict[str, list[Permission]]:
    """The permissions of each documented group, from the installed models."""
    every = list(Permission.objects.select_related("content_type"))

    def name(permission: Permission) -> str:
        return f"{permission.content_type.app_label}.{permission.codename}"

    viewers = [
        p
        for p in every
        if p.content_type.app_label in AREA_APPS
        and p.codename.startswith("view_")
        and name(p) not in NOT_FOR_VIEWERS
    ]
    actions = [p for p in every if name(p) in ENGINEER_ACTIONS]
    return {VIEWERS: viewers, ENGINEERS: viewers + actions, ADMINS: every}


@transaction.atomic
def ensure_groups() -> dict[str, int]:
    """Create the documented groups and give each its documented permissions; the number each
    gained. Idempotent, and it never takes away a permission an admin added by hand."""
    gained = {}
    for group_name, permissions in group_permissions().items():
        group, _ = Group.objects.get_or_create(name=group_name)
        had = set(group.permissions.values_list("pk", flat=True))
        new = [permission for permission in permissions if permission.pk not in had]
        group.permissions.add(*new)
        gained[group_name] = len(new)
    return gained
