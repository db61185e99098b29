"""The emissions reference workload: OffGridFlow's batch processor in miniature.

An ActivityBatch is one upload of activity data (fuel burnt, electricity bought, ...); each
Activity row is turned into kg CO2e with the EmissionFactor valid for its type, unit and date.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from emissions.rows import QUANTITY

REFERENCE_RULE = "letters, digits, '-' or '_', starting with a letter (e.g. seed-2024-01)"
validate_reference = RegexValidator(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", f"use {REFERENCE_RULE}")
PERIOD_RULE = "YYYY, YYYY-Qn or YYYY-MM (e.g. 2024-Q1)"
validate_period = RegexValidator(r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$", f"use {PERIOD_RULE}")


class EmissionFactor(models.Model):
    activity_type = models.CharField(max_length=64)
    unit = models.CharField(max_length=16)
    kg_co2e_per_unit = models.DecimalField("kg CO2e per unit", max_digits=14, decimal_places=6)
    source = models.CharField(max_length=120, blank=True)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True, help_text="Inclusive; empty: open-ended.")

    class Meta:
        ordering = ["activity_type", "unit", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["activity_type", "unit", "valid_from"], name="unique_factor_validity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.activity_type} ({self.unit}) from {self.valid_from}"


class BatchStatus(models.TextChoices):
    UPLOADED = "uploaded"
    CALCULATING = "calculating"
    DONE = "done"
    FAILED = "failed"


class ActivityBatch(models.Model):
    reference = models.CharField(
        max_length=64, unique=True, validators=[validate_reference], help_text=REFERENCE_RULE
    )
    organisation = models.CharField(max_length=120)
    period = models.CharField(max_length=10, validators=[validate_period], help_text=PERIOD_RULE)
    status = models.CharField(
        max_length=12, choices=BatchStatus.choices, default=BatchStatus.UPLOADED
    )
    row_count = models.PositiveIntegerField(default=0, help_text="Rows kept.")
    error_count = models.PositiveIntegerField(default=0, help_text="Rows rejected.")
    error_report = models.JSONField(
        default=list, blank=True, help_text="Rejected rows: line and reason (the first 1,000)."
    )
    uncalculated_count = models.PositiveIntegerField(
        default=0, help_text="Rows without a matching emission factor at the last calculation."
    )
    total_kg_co2e = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    calculated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "activity batches"

    def __str__(self) -> str:
        return f"{self.reference} ({self.organisation}, {self.period})"


class Scope(models.IntegerChoices):
    SCOPE_1 = 1, "Scope 1"
    SCOPE_2 = 2, "Scope 2"
    SCOPE_3 = 3, "Scope 3"


class Activity(models.Model):
    # Ingest speed: no index of its own on batch (the (batch, line_number) index serves it)
    # and no database constraint on either foreign key, whose per-row trigger halves COPY
    # throughput. Rows are only written with the batch created in the same transaction;
    # Django's collector applies on_delete (CASCADE, SET_NULL) itself.
    batch = models.ForeignKey(
        ActivityBatch,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
        db_constraint=False,
    )
    line_number = models.PositiveIntegerField(help_text="Line (CSV) or item (JSON) uploaded.")
    scope = models.PositiveSmallIntegerField(choices=Scope.choices)
    category = models.CharField(max_length=64)
    activity_type = models.CharField(max_length=64)
    quantity = models.DecimalField(
        max_digits=QUANTITY.max_digits, decimal_places=QUANTITY.decimal_places
    )
    unit = models.CharField(max_length=16)
    date = models.DateField()
    # Deliberately unindexed: the by-site listing is one of the workload's tuning opportunities.
    site = models.CharField(max_length=64)
    factor = models.ForeignKey(
        EmissionFactor,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        db_constraint=False,
    )
    kg_co2e = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    class Meta:
        verbose_name_plural = "activities"
        # Few indexes on purpose: each one slows batch ingest (COPY) a lot. On PostgreSQL a
        # BRIN index on date (migration 0002) serves date ranges at almost no ingest cost.
        indexes = [models.Index(fields=["batch", "line_number"], name="activity_batch_line")]

    def __str__(self) -> str:
        return f"{self.activity_type} {self.quantity} {self.unit} on {self.date}"
