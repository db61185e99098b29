"""Target PostgreSQL databases, the query fingerprints seen on them, and the deltas of
pg_stat_statements between consecutive snapshots."""

from __future__ import annotations

from django.db import models


class QueryTarget(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Stored as given (the connection needs the password); every page, message and log line
    # shows it through queryopt.dsn.mask_dsn / redact instead.
    dsn = models.TextField(
        "DSN", help_text="postgresql://user:password@host:port/dbname or key=value conninfo."
    )
    slow_threshold_ms = models.PositiveIntegerField(default=100)
    polling_interval_s = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_snapshot_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class QueryFingerprint(models.Model):
    # Null for the app's own database (the capture middleware, later in issue 10).
    target = models.ForeignKey(
        QueryTarget, null=True, blank=True, on_delete=models.CASCADE, related_name="fingerprints"
    )
    fingerprint = models.CharField(
        max_length=64, help_text="pglast fingerprint, or pg_stat_statements queryid as text."
    )
    query_text = models.TextField(help_text="The normalised query ($1 for each constant).")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Two conditional constraints rather than nulls_distinct=False, which SQLite lacks.
        constraints = [
            models.UniqueConstraint(
                fields=["target", "fingerprint"],
                condition=models.Q(target__isnull=False),
                name="queryopt_fingerprint_unique_per_target",
            ),
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(target__isnull=True),
                name="queryopt_fingerprint_unique_in_own_database",
            ),
        ]

    def __str__(self) -> str:
        return self.query_text[:80]


class SnapshotReason(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    RUN_START = "run_start", "Load-test run started"
    RUN_END = "run_end", "Load-test run ended"
    MANUAL = "manual", "Manual"


class StatementSnapshot(models.Model):
    target = models.ForeignKey(QueryTarget, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(db_index=True)
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="statement_snapshots",
    )
    reason = models.CharField(max_length=16, choices=SnapshotReason.choices)
    stats_reset = models.DateTimeField(null=True, blank=True)
    counters = models.JSONField(
        default=dict,
        help_text="pg_stat_statements' cumulative counters per userid:dbid:queryid, the base "
        "of the next snapshot's deltas (the view is never reset by us).",
    )

    class Meta:
        ordering = ["-taken_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.target} at {self.taken_at:%Y-%m-%d %H:%M:%S} ({self.reason})"


_WINDOW_HELP = (
    "From the latest pg_stat_statements row, not this window alone: the view keeps no "
    "per-window minimum, maximum or deviation."
)


class StatementDelta(models.Model):
    snapshot = models.ForeignKey(StatementSnapshot, on_delete=models.CASCADE, related_name="deltas")
    fingerprint = models.ForeignKey(
        QueryFingerprint, on_delete=models.CASCADE, related_name="deltas"
    )
    calls = models.BigIntegerField()
    total_exec_time_ms = models.FloatField()
    mean_exec_time_ms = models.FloatField()
    min_exec_time_ms = models.FloatField(help_text=_WINDOW_HELP)
    max_exec_time_ms = models.FloatField(help_text=_WINDOW_HELP)
    stddev_exec_time_ms = models.FloatField(help_text=_WINDOW_HELP)
    rows = models.BigIntegerField()
    shared_blks_hit = models.BigIntegerField()
    shared_blks_read = models.BigIntegerField()
    temp_blks_read = models.BigIntegerField()
    temp_blks_written = models.BigIntegerField()

    class Meta:
        ordering = ["-total_exec_time_ms"]

    def __str__(self) -> str:
        return f"{self.calls} calls, {self.total_exec_time_ms:.1f} ms"
