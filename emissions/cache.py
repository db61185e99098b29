"""The emissions API's cache strategies, declared on the tool's generic cache layer.

Imported when the app is ready (EmissionsConfig.ready), so the Cache page lists them from the
first request. Their TTLs stay in the CACHE_TTL_* settings, read at every use.
"""

from __future__ import annotations

from offgridperf import cache

BATCH = cache.register(
    "batch", ttl_setting="CACHE_TTL_BATCH", description="batch status and detail"
)
ACTIVITY = cache.register(
    "activity",
    ttl_setting="CACHE_TTL_ACTIVITY",
    description="a batch's calculated activity rows",
)
EMISSIONS = cache.register(
    "emissions", ttl_setting="CACHE_TTL_EMISSIONS", description="emissions totals"
)
QUERY = cache.register(
    "query", ttl_setting="CACHE_TTL_QUERY", description="activity listings (query results)"
)
