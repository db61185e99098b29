from __future__ import annotations

from django.contrib import admin

from emissions.models import Activity, ActivityBatch, EmissionFactor


@admin.register(EmissionFactor)
class EmissionFactorAdmin(admin.ModelAdmin):
    list_display = ("activity_type", "unit", "kg_co2e_per_unit", "valid_from", "valid_to", "source")
    list_filter = ("unit",)
    search_fields = ("activity_type", "source")


@admin.register(ActivityBatch)
class ActivityBatchAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "organisation",
        "period",
        "status",
        "row_count",
        "error_count",
        "total_kg_co2e",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("reference", "organisation")
    readonly_fields = ("created_at", "updated_at", "calculated_at")


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("batch", "line_number", "scope", "activity_type", "quantity", "unit", "date")
    list_filter = ("scope",)
    raw_id_fields = ("batch", "factor")
    show_full_result_count = False  # the table is large; counting it on every page is slow
    list_select_related = ("batch",)
