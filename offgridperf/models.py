"""The tool's own model: no data, only the permissions of what offgridperf itself offers."""

from __future__ import annotations

from django.db import models

INVALIDATE_CACHE = "invalidate_cache"
VIEW_CACHE = "view_cache"


class CacheLayer(models.Model):
    """Holds the Cache page's permissions (`offgridperf.view_cache`, `.invalidate_cache`).

    Unmanaged and never queried: it has no table, only a content type, so that the permission
    belongs to the tool rather than to an app that happens to use the cache.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            (VIEW_CACHE, "Can view the cache page"),
            (INVALIDATE_CACHE, "Can invalidate cache strategies and reset cache metrics"),
        ]
        verbose_name = "cache layer"

    def __str__(self) -> str:
        return "cache layer"
