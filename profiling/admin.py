from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from profiling import tasks
from profiling.models import CAPTURE_ANY_PROCESS, FunctionStat, ProfileCapture, ProfileTarget


@admin.register(ProfileTarget)
class ProfileTargetAdmin(admin.ModelAdmin):
    list_display = [
        "name", "pid", "pid_file", "cmdline_match", "include_children", "allocations_during_runs",
    ]  # fmt: skip
    search_fields = ["name", "cmdline_match"]
    filter_horizontal = ["load_tests"]


class FunctionStatInline(admin.TabularInline):
    model = FunctionStat
    fields = ["function", "file", "line", "self_pct", "total_pct", "self_samples"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0


@admin.register(ProfileCapture)
class ProfileCaptureAdmin(admin.ModelAdmin):
    """Adding a capture here queues it for a worker; what it found is read-only."""

    list_display = ["pk", "kind", "target", "pid", "status", "verdict", "run", "created_at"]
    list_filter = ["kind", "status", "verdict", "target"]
    fields = [
        "kind",
        "target",
        "pid",
        "duration_s",
        "rate_hz",
        "interval_ms",
        "include_children",
        "idle",
        "run",
        "status",
        "error",
        "tool",
        "tool_version",
        "python_version",
        "verdict",
        "summary",
        "artefacts",
        "started_at",
        "finished_at",
        "created_by",
        "any_process",
    ]
    raw_id_fields = ["run"]
    inlines = [FunctionStatInline]
    result_fields = [
        "status",
        "error",
        "tool",
        "tool_version",
        "python_version",
        "verdict",
        "summary",
        "artefacts",
        "started_at",
        "finished_at",
        "created_by",
        "any_process",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.fields if obj is not None else self.result_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ProfileCapture, form: Any, change: bool
    ) -> None:
        obj.created_by = request.user.get_username()
        # Never a form field: only the permission lets a capture leave the registered targets.
        obj.any_process = request.user.has_perm(f"profiling.{CAPTURE_ANY_PROCESS}")
        super().save_model(request, obj, form, change)
        if not change:
            transaction.on_commit(lambda: tasks.take_capture.delay(obj.pk))
