"""Target PostgreSQL databases, the query shapes seen on them (each known by its fingerprint),
and the deltas of pg_stat_statements between consecutive snapshots."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
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
    own_database = models.BooleanField(
        default=False,
        help_text="This is the app's own database: the statistics its capture middleware "
        "takes of the app's queries are filed under this target's query shapes.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IndexSurvey(models.Model):
    """A target's unused and duplicate indexes as a Celery task last read them: the Indexes
    page shows this and never connects to the target inside a request."""

    target = models.OneToOneField(
        QueryTarget, on_delete=models.CASCADE, related_name="index_survey"
    )
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a refresh was last asked for."
    )
    taken_at = models.DateTimeField(null=True, blank=True, help_text="When it was last read.")
    unused = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    duplicate = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    problem = models.TextField(blank=True, help_text="Why the last reading failed (redacted).")

    def __str__(self) -> str:
        return f"indexes of {self.target}"

    @property
    def refreshing(self) -> bool:
        """A refresh was asked for after the last reading."""
        return self.requested_at is not None and (
            self.taken_at is None or self.requested_at > self.taken_at
        )


# The column of every foreign key to QueryShape kept its first name: renaming it would have
# PostgreSQL re-check the foreign key over every row of the largest tables (migration 0006).
SHAPE_COLUMN = "fingerprint_id"


class QueryShape(models.Model):
    """One query shape on one database. App-side capture statistics (QueryStatWindow) and
    pg_stat_statements deltas (StatementDelta) of the same query meet here: both are keyed by
    pglast's fingerprint of the SQL (queryopt.fingerprints), which ignores constants."""

    # Null for the app's own database when no target is marked own_database (e.g. SQLite).
    target = models.ForeignKey(
        QueryTarget, null=True, blank=True, on_delete=models.CASCADE, related_name="shapes"
    )
    fingerprint = models.CharField(
        max_length=64,
        help_text="queryopt.fingerprints.fingerprint of the SQL (pglast, or 'r...' for the "
        "regex fallback).",
    )
    queryid = models.BigIntegerField(
        null=True, blank=True, help_text="The latest pg_stat_statements queryid seen for it."
    )
    query_text = models.TextField(help_text="The normalised query ($1 for each constant).")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    explain_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a plan was last asked for from its page."
    )
    explain_problem = models.TextField(
        blank=True, help_text="Why the plan asked for last could not be taken (redacted)."
    )

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
    shape = models.ForeignKey(
        QueryShape, on_delete=models.CASCADE, related_name="deltas", db_column=SHAPE_COLUMN
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


class QueryStatWindow(models.Model):
    """App-side statistics of one query shape from one origin over one flush window (about a
    second) of one process: what the capture middleware and Celery handlers measured."""

    shape = models.ForeignKey(
        QueryShape,
        on_delete=models.CASCADE,
        related_name="stat_windows",
        db_column=SHAPE_COLUMN,
    )
    window_start = models.DateTimeField(db_index=True)
    window_end = models.DateTimeField()
    origin = models.CharField(
        max_length=200, help_text="The view (e.g. 'GET emissions.views.batches') or task name."
    )
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="query_stat_windows",
    )
    calls = models.PositiveIntegerField()
    errors = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField()
    min_ms = models.FloatField()
    max_ms = models.FloatField()
    p95_ms = models.FloatField()
    p99_ms = models.FloatField()
    histogram = models.TextField(
        blank=True, help_text="The window's latency histogram (HdrHistogram encoding), to merge."
    )

    class Meta:
        ordering = ["-window_start", "-pk"]
        indexes = [models.Index(fields=["shape", "window_start"])]

    def __str__(self) -> str:
        return f"{self.origin}: {self.calls} calls, {self.total_ms:.1f} ms"

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


class RollupGrain(models.TextChoices):
    """How finely a QueryStatRollup row splits a query shape's day: the page reads the
    coarsest grain its filters allow."""

    FINGERPRINT = "fingerprint", "Fingerprint (every origin and run)"
    ORIGIN = "origin", "Fingerprint and origin (every run)"
    RUN = "run", "Fingerprint, origin and run (or no run)"


class QueryStatRollup(models.Model):
    """The QueryStatWindow rows of one day (in TIME_ZONE), summed by queryopt.rollups at each
    grain. The Queries page reads days, not seconds."""

    shape = models.ForeignKey(
        QueryShape,
        on_delete=models.CASCADE,
        related_name="stat_rollups",
        db_column=SHAPE_COLUMN,
    )
    grain = models.CharField(max_length=16, choices=RollupGrain.choices)
    origin = models.CharField(max_length=200, blank=True)
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="query_stat_rollups",
    )
    day = models.DateField()
    windows = models.PositiveIntegerField(default=0)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    p95_bound_ms = models.FloatField(
        default=0.0, help_text="The worst window's p95: a bound, for ranking only."
    )
    histogram = models.TextField(blank=True, help_text="The windows' histograms, merged.")

    class Meta:
        indexes = [
            models.Index(fields=["grain", "day"]),
            models.Index(fields=["grain", "shape", "day"]),
        ]

    def __str__(self) -> str:
        return f"{self.origin or 'all'} on {self.day}: {self.calls} calls"


class StatRollupState(models.Model):
    """One row: the id of the last QueryStatWindow summed into the roll-ups, and the time zone
    their days are in (another TIME_ZONE rebuilds them)."""

    rolled_up_to = models.BigIntegerField(default=0)
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"windows rolled up to #{self.rolled_up_to}"


class SlowQuery(models.Model):
    """One execution of an app query above the slow threshold."""

    shape = models.ForeignKey(
        QueryShape,
        on_delete=models.CASCADE,
        related_name="slow_queries",
        db_column=SHAPE_COLUMN,
    )
    captured_at = models.DateTimeField(db_index=True)
    duration_ms = models.FloatField()
    sql = models.TextField(help_text="The statement, its parameters redacted unless kept.")
    params = models.JSONField(
        null=True, blank=True, help_text="The parameters, only when QUERYOPT_KEEP_PARAMS is on."
    )
    origin = models.CharField(max_length=200)
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slow_queries",
    )
    code_frame = models.CharField(
        max_length=300, blank=True, help_text="The first frame of our own code: file:line function."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-captured_at", "-pk"]
        verbose_name_plural = "slow queries"

    def __str__(self) -> str:
        return f"{self.duration_ms:.1f} ms in {self.origin}"


class NPlusOne(models.Model):
    """A query shape run at least QUERYOPT_N_PLUS_ONE_MIN times within one request or task."""

    shape = models.ForeignKey(
        QueryShape, on_delete=models.CASCADE, related_name="n_plus_ones", db_column=SHAPE_COLUMN
    )
    origin = models.CharField(max_length=200)
    occurrences = models.PositiveIntegerField(
        default=0, help_text="Requests or tasks in which it happened."
    )
    last_count = models.PositiveIntegerField(default=0, help_text="Executions in the latest one.")
    max_count = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField(default=0.0, help_text="Time of its executions, all together.")
    last_run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="n_plus_ones",
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    code_frame = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = "N+1 group"
        constraints = [
            models.UniqueConstraint(fields=["shape", "origin"], name="queryopt_n_plus_one_unique")
        ]

    def __str__(self) -> str:
        return f"N+1 in {self.origin}: {self.max_count} executions"


class PlanSource(models.TextChoices):
    ON_DEMAND = "on_demand", "On demand"
    SLOW = "slow", "New slow query shape"
    ADVISOR = "advisor", "Advisor"


class QueryPlan(models.Model):
    """An EXPLAIN of a query shape; a new plan_hash for one shape is a plan change."""

    shape = models.ForeignKey(
        QueryShape, on_delete=models.CASCADE, related_name="plans", db_column=SHAPE_COLUMN
    )
    captured_at = models.DateTimeField(db_index=True)
    plan_hash = models.CharField(max_length=64, db_index=True)
    plan = models.JSONField(help_text="EXPLAIN (FORMAT JSON)'s document.")
    generic = models.BooleanField(default=False)
    analyzed = models.BooleanField(default=False)
    problems = models.JSONField(default=list, blank=True)
    total_cost = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=PlanSource.choices)
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="query_plans",
    )

    class Meta:
        ordering = ["-captured_at", "-pk"]

    def __str__(self) -> str:
        return f"plan {self.plan_hash[:12]} at {self.captured_at:%Y-%m-%d %H:%M:%S}"


class HintKind(models.TextChoices):
    PREFERRED = "preferred", "Preferred"
    REJECTED = "rejected", "Rejected"


class IndexHint(models.Model):
    """An engineer's word on an index: preferred ones are shown beside the advice, rejected
    ones are never recommended."""

    target = models.ForeignKey(
        QueryTarget,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="index_hints",
        help_text="Empty: the hint holds for every target.",
    )
    table = models.CharField(max_length=200)
    columns = models.JSONField(help_text="Column names, in index order.")
    kind = models.CharField(max_length=16, choices=HintKind.choices)
    note = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["table", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.table}({', '.join(self.columns)})"


class RecommendationStatus(models.TextChoices):
    OPEN = "open", "Open"
    APPLIED = "applied", "Applied"
    DISMISSED = "dismissed", "Dismissed"


class IndexRecommendation(models.Model):
    """One recommendation of the advisor, kept so that the snapshot after its index appears
    can measure the before/after mean time of the queries it was meant for."""

    target = models.ForeignKey(
        QueryTarget, on_delete=models.CASCADE, related_name="recommendations"
    )
    table = models.CharField(max_length=200)
    columns = models.JSONField()
    statement = models.TextField()
    cost_before = models.FloatField()
    cost_after = models.FloatField()
    validated = models.BooleanField(
        default=True, help_text="Checked with HypoPG; False for heuristic advice."
    )
    shapes = models.ManyToManyField(QueryShape, related_name="recommendations")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=RecommendationStatus.choices, default=RecommendationStatus.OPEN
    )
    applied_at = models.DateTimeField(
        null=True, blank=True, help_text="When a snapshot first found the index in place."
    )
    applied_index = models.CharField(max_length=200, blank=True)
    before_mean_ms = models.FloatField(null=True, blank=True)
    before_calls = models.BigIntegerField(null=True, blank=True)
    after_mean_ms = models.FloatField(null=True, blank=True)
    after_calls = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.statement

    @property
    def saving_pct(self) -> float:
        return 100.0 * (1 - self.cost_after / self.cost_before) if self.cost_before else 0.0
