from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from queryopt.dsn import mask_dsn, redact
from queryopt.forms import QueryTargetForm
from queryopt.models import QueryTarget, StatementDelta, StatementSnapshot


@admin.register(QueryTarget)
class QueryTargetAdmin(admin.ModelAdmin):
    form = QueryTargetForm
    list_display = ["name", "masked_dsn", "enabled", "slow_threshold_ms", "last_snapshot_at"]
    readonly_fields = ["created_at", "updated_at", "last_snapshot_at", "shown_last_error"]
    search_fields = ["name"]

    @admin.display(description="DSN")
    def masked_dsn(self, target: QueryTarget) -> str:
        return mask_dsn(target.dsn)

    @admin.display(description="Last error")
    def shown_last_error(self, target: QueryTarget) -> str:
        return redact(target.last_error, target.dsn) or "-"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Snapshots are measurements: nobody adds or edits one by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatementDeltaInline(admin.TabularInline):
    model = StatementDelta
    fields = ["query", "calls", "total_exec_time_ms", "mean_exec_time_ms", "rows"]
    readonly_fields = fields
    can_delete = False
    extra = 0

    @admin.display(description="Query")
    def query(self, delta: StatementDelta) -> str:
        return delta.fingerprint.query_text[:200]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StatementSnapshot)
class StatementSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["target", "taken_at", "reason", "run"]
    list_filter = ["target", "reason"]
    exclude = ["counters"]
    inlines = [StatementDeltaInline]


@admin.register(StatementDelta)
class StatementDeltaAdmin(ReadOnlyAdmin):
    list_display = ["fingerprint", "snapshot", "calls", "total_exec_time_ms", "mean_exec_time_ms"]
    list_filter = ["snapshot__target"]
    list_select_related = ["fingerprint", "snapshot__target"]
