from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from queryopt.dsn import mask_dsn, redact
from queryopt.forms import IndexHintForm, QueryTargetForm
from queryopt.models import (
    IndexHint,
    IndexRecommendation,
    NPlusOne,
    QueryPlan,
    QueryStatWindow,
    QueryTarget,
    RecommendationStatus,
    SlowQuery,
    StatementDelta,
    StatementSnapshot,
)


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
        return delta.shape.query_text[:200]

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
    list_display = ["shape", "snapshot", "calls", "total_exec_time_ms", "mean_exec_time_ms"]
    list_filter = ["snapshot__target"]
    list_select_related = ["shape", "snapshot__target"]


# Below, a target shows by its name only (QueryTarget.__str__): never its DSN.


@admin.register(IndexHint)
class IndexHintAdmin(admin.ModelAdmin):
    form = IndexHintForm
    list_display = ["table", "shown_columns", "kind", "target", "note", "created_by", "created_at"]
    list_filter = ["kind", "target"]
    search_fields = ["table", "note"]
    readonly_fields = ["created_by", "created_at"]

    @admin.display(description="Columns")
    def shown_columns(self, hint: IndexHint) -> str:
        return ", ".join(hint.columns)

    def save_model(
        self, request: HttpRequest, obj: IndexHint, form: ModelForm, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(IndexRecommendation)
class IndexRecommendationAdmin(ReadOnlyAdmin):
    """Written by the advisor and the snapshots; an engineer may only dismiss one."""

    list_display = [
        "table",
        "shown_columns",
        "target",
        "status",
        "validated",
        "cost_before",
        "cost_after",
        "before_mean_ms",
        "after_mean_ms",
        "updated_at",
    ]
    list_filter = ["status", "validated", "target"]
    list_select_related = ["target"]
    search_fields = ["table", "statement"]
    filter_horizontal = ["shapes"]
    actions = ["dismiss"]

    @admin.display(description="Columns")
    def shown_columns(self, recommendation: IndexRecommendation) -> str:
        return ", ".join(recommendation.columns)

    @admin.action(description="Dismiss the selected open recommendations")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[IndexRecommendation]) -> None:
        count = queryset.filter(status=RecommendationStatus.OPEN).update(
            status=RecommendationStatus.DISMISSED
        )
        self.message_user(request, f"{count} recommendation(s) dismissed.")


@admin.register(QueryPlan)
class QueryPlanAdmin(ReadOnlyAdmin):
    list_display = ["shape", "plan_hash", "captured_at", "source", "total_cost", "generic"]
    list_filter = ["source", "analyzed", "shape__target"]
    list_select_related = ["shape"]
    search_fields = ["plan_hash", "shape__query_text"]
    raw_id_fields = ["shape", "run"]


@admin.register(SlowQuery)
class SlowQueryAdmin(ReadOnlyAdmin):
    list_display = ["shape", "duration_ms", "origin", "captured_at", "run"]
    list_filter = ["shape__target"]
    list_select_related = ["shape", "run"]
    search_fields = ["origin", "sql"]
    raw_id_fields = ["shape", "run"]


@admin.register(NPlusOne)
class NPlusOneAdmin(ReadOnlyAdmin):
    list_display = ["shape", "origin", "occurrences", "max_count", "total_ms", "last_seen_at"]
    list_select_related = ["shape"]
    search_fields = ["origin"]
    raw_id_fields = ["shape", "last_run"]


@admin.register(QueryStatWindow)
class QueryStatWindowAdmin(ReadOnlyAdmin):
    list_display = ["shape", "origin", "window_start", "calls", "total_ms", "p95_ms"]
    list_select_related = ["shape"]
    search_fields = ["origin"]
    raw_id_fields = ["shape", "run"]
    exclude = ["histogram"]
