from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from loadtests import datasets, tokens
from loadtests.engine.config import (
    CHECK_CONTAINS,
    CHECK_JSON_EQUALS,
    CLOSED,
    CONNECTIONS_RULE,
    DEFAULT_SUCCESS_TEXT,
    DURATION_RULE,
    FLOW,
    MAX_CONNECTIONS,
    MAX_DURATION_S,
    MAX_POLL_ATTEMPTS,
    MAX_POLL_INTERVAL_S,
    MAX_RATE,
    MAX_TIMEOUT_S,
    MAX_USERS,
    MAX_WEIGHT,
    MIN_TIMEOUT_S,
    OPEN,
    POLL_RULE,
    RANDOM,
    RATE_RULE,
    REQUESTS,
    SEQUENTIAL,
    TIMEOUT_RULE,
    UNIQUE,
    USERS_RULE,
    WEIGHT_RULE,
)
from loadtests.secrets import redact, secret_header_problems, secret_values
from loadtests.validators import (
    HTTP_METHODS,
    validate_extractions,
    validate_headers,
    validate_status_codes,
    validate_step_path,
    validate_target_url,
)

positive = MinValueValidator(0)


class Tag(models.Model):
    name = models.SlugField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TargetURLField(models.URLField):
    """A URL field whose form assumes http:// for scheme-less input (load targets are local)."""

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"assume_scheme": "http", **kwargs})


# The values are the engine's (one definition); the labels are how the pages show them.
class LoadModel(models.TextChoices):
    CLOSED = CLOSED, "closed (virtual users)"
    OPEN = OPEN, "open (arrival rate)"


class Mode(models.TextChoices):
    REQUESTS = REQUESTS, "requests (weighted independent steps)"
    FLOW = FLOW, "flow (steps top to bottom, once per iteration)"


class DataOrder(models.TextChoices):
    SEQUENTIAL = SEQUENTIAL, "sequential (shared, wrapping around)"
    RANDOM = RANDOM, "random"
    UNIQUE = UNIQUE, "unique (each row once; the run ends when they run out)"


# What a polled step does when its attempts or interval are left empty (the engine's Poll).
DEFAULT_POLL_ATTEMPTS = 20
DEFAULT_POLL_INTERVAL_S = 0.5


class DataSet(models.Model):
    """A CSV file whose rows feed a flow's `{{ row.column }}`. The text lives in the row, not
    on a disk, so that a worker on any host reads it; `sha256` is of the file as uploaded,
    and a run's frozen config records it (loadtests/datasets.py checks uploads)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    csv_text = models.TextField(editable=False)
    columns = models.JSONField(default=list, editable=False)
    row_count = models.PositiveIntegerField(default=0, editable=False)
    size_bytes = models.PositiveIntegerField(default=0, editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    uploaded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "data set"

    def __str__(self) -> str:
        return self.name

    def set_file(self, parsed: datasets.ParsedDataSet) -> None:
        self.csv_text = parsed.text
        self.columns = list(parsed.columns)
        self.row_count = parsed.row_count
        self.size_bytes = parsed.size_bytes
        self.sha256 = parsed.sha256

    def rows(self) -> tuple[dict[str, str], ...]:
        return datasets.rows_of(self.csv_text)


MAX_SHARDS = 64


class ScheduleKind(models.TextChoices):
    INTERVAL = "interval", "every N seconds"
    CRONTAB = "crontab", "crontab"


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", "skip it (recorded with its reason)"
    QUEUE = "queue", "queue it"


class LoadTestDefinition(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    target_base_url = TargetURLField(
        "target base URL",
        max_length=300,
        validators=[validate_target_url],
        help_text="Scheme and host (and port), e.g. http://127.0.0.1:8001. Must be allow-listed.",
    )
    mode = models.CharField(
        max_length=10,
        choices=Mode.choices,
        default=Mode.REQUESTS,
        help_text="requests: weighted independent steps (the fast path); flow: the steps in "
        "order, once per iteration, with extraction, polling and a cookie jar per user.",
    )
    data_set = models.ForeignKey(
        DataSet,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="definitions",
        help_text="Its rows feed {{ row.column }} in the steps.",
    )
    data_order = models.CharField(
        max_length=10, choices=DataOrder.choices, default=DataOrder.SEQUENTIAL
    )
    load_model = models.CharField(
        max_length=10, choices=LoadModel.choices, default=LoadModel.CLOSED
    )
    users = models.PositiveIntegerField(
        "virtual users",
        default=10,
        validators=[MaxValueValidator(MAX_USERS, USERS_RULE)],
        help_text="Closed model: concurrent users (the hold level when no stages are given).",
    )
    think_time_min_s = models.FloatField("think time min (s)", default=0, validators=[positive])
    think_time_max_s = models.FloatField("think time max (s)", default=0, validators=[positive])
    rate_rps = models.FloatField(
        "arrival rate (req/s)",
        default=0,
        validators=[MinValueValidator(0, RATE_RULE), MaxValueValidator(MAX_RATE, RATE_RULE)],
        help_text="Open model: requests per second (the hold level when no stages are given).",
    )
    duration_s = models.PositiveIntegerField(
        "duration (s)",
        default=30,
        validators=[
            MinValueValidator(1, DURATION_RULE),
            MaxValueValidator(MAX_DURATION_S, DURATION_RULE),
        ],
        help_text="Total duration; when stages are given, their durations must add up to it.",
    )
    timeout_s = models.FloatField(
        "request timeout (s)",
        default=10,
        validators=[
            MinValueValidator(MIN_TIMEOUT_S, TIMEOUT_RULE),
            MaxValueValidator(MAX_TIMEOUT_S, TIMEOUT_RULE),
        ],
    )
    max_connections = models.PositiveIntegerField(
        "connection cap",
        default=100,
        validators=[
            MinValueValidator(1, CONNECTIONS_RULE),
            MaxValueValidator(MAX_CONNECTIONS, CONNECTIONS_RULE),
        ],
    )
    follow_redirects = models.BooleanField(default=False)
    verify_tls = models.BooleanField(
        "verify TLS certificates",
        default=True,
        help_text="Check an https target's certificate. Turn off only for test targets with "
        "a self-signed certificate.",
    )
    agent_tagging = models.BooleanField(
        "tag requests for the target agent",
        default=True,
        help_text="Send each request's run and step in a signed header, so that the agent in "
        "the target (offgridperf_agent) measures its server, database and query time.",
    )
    threshold_p95_ms = models.FloatField(
        "p95 limit (ms)", null=True, blank=True, validators=[positive]
    )
    threshold_p99_ms = models.FloatField(
        "p99 limit (ms)", null=True, blank=True, validators=[positive]
    )
    threshold_iteration_p95_ms = models.FloatField(
        "iteration p95 limit (ms)",
        null=True,
        blank=True,
        validators=[positive],
        help_text="Flow mode: the whole journey's p95.",
    )
    threshold_error_rate_pct = models.FloatField(
        "error rate limit (%)",
        null=True,
        blank=True,
        validators=[positive, MaxValueValidator(100)],
    )
    threshold_min_throughput_rps = models.FloatField(
        "minimum throughput (req/s)", null=True, blank=True, validators=[positive]
    )
    abort_error_rate_pct = models.FloatField(
        "abort above error rate (%)",
        null=True,
        blank=True,
        default=5.0,
        validators=[positive, MaxValueValidator(100)],
        help_text="Stop the run early when the error rate over the last 10 s exceeds this. "
        "Empty: never abort.",
    )
    shards = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SHARDS)],
        help_text="Split the load over this many Celery workers (queue loadgen): the rate (open "
        "model) or the users and unique data rows (closed model), 1/N each.",
    )
    schedule_kind = models.CharField(
        max_length=10,
        choices=ScheduleKind.choices,
        blank=True,
        default="",
        help_text="Run on a schedule: every N seconds, or a crontab.",
    )
    schedule_every_s = models.PositiveIntegerField(
        "every (s)", null=True, blank=True, help_text="Interval schedules: seconds between runs."
    )
    schedule_crontab = models.CharField(
        "crontab",
        max_length=100,
        blank=True,
        help_text="Crontab schedules: minute hour day-of-month month day-of-week, e.g. "
        "'0 3 * * *'.",
    )
    schedule_timezone = models.CharField(
        "time zone", max_length=64, blank=True, help_text="Crontab schedules: an IANA name."
    )
    schedule_enabled = models.BooleanField(default=True)
    overlap_policy = models.CharField(
        max_length=8,
        choices=OverlapPolicy.choices,
        default=OverlapPolicy.SKIP,
        help_text="What a scheduled run does while the previous run of this test still goes.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="load_test",
        editable=False,
        help_text="The beat entry kept in sync with the schedule above (never edited by hand).",
    )
    alert_emails = models.TextField(
        blank=True, help_text="Comma-separated addresses told of regressions and failed thresholds."
    )
    alert_webhook_url = models.URLField(
        "alert webhook",
        max_length=500,
        blank=True,
        help_text="A JSON POST on each alert; its host must be in ALERT_WEBHOOK_ALLOWED_HOSTS.",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="definitions")
    baseline_run = models.ForeignKey(
        "LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run others are compared with; empty: the last passing run.",
    )
    # An import resolves `${NAME}` from the environment, so the stored values no longer say
    # how they were written; this keeps the text as written for the export, with a
    # fingerprint of what it resolved to, so that a value edited since exports as itself.
    written_values = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Values an imported document wrote with ${NAME} references (target URL, step "
        "headers) as written, with a SHA-256 of what each resolved to.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("loadtests:definition", args=[self.pk])

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.think_time_max_s < self.think_time_min_s:
            errors["think_time_max_s"] = "Must be at least the think time min."
        if self.load_model == LoadModel.OPEN and self.rate_rps <= 0:
            errors["rate_rps"] = "An open-model test needs an arrival rate above 0 req/s."
        if self.load_model == LoadModel.CLOSED and self.users < 1:
            errors["users"] = "A closed-model test needs at least 1 virtual user."
        if self.load_model == LoadModel.OPEN and (self.think_time_min_s or self.think_time_max_s):
            errors["think_time_min_s"] = "Think time applies to the closed model only."
        if errors:
            raise ValidationError(errors)


class LoadTestStep(models.Model):
    class Check(models.TextChoices):
        NONE = "", "none"
        CONTAINS = CHECK_CONTAINS, "body contains"
        JSON_EQUALS = CHECK_JSON_EQUALS, "JSON field equals"

    definition = models.ForeignKey(
        LoadTestDefinition, on_delete=models.CASCADE, related_name="steps"
    )
    order = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=60)
    method = models.CharField(max_length=7, choices=[(m, m) for m in HTTP_METHODS], default="GET")
    path = models.CharField(max_length=500, validators=[validate_step_path])
    headers = models.JSONField(default=dict, blank=True, validators=[validate_headers])
    secret_headers = models.JSONField(
        default=list,
        blank=True,
        help_text="Names of further headers whose values are secret (masked everywhere but in "
        "what is sent). Authorization, Cookie and Proxy-Authorization always are.",
    )
    body = models.TextField(blank=True)
    weight = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1, WEIGHT_RULE), MaxValueValidator(MAX_WEIGHT, WEIGHT_RULE)],
    )
    expected_statuses = models.CharField(
        max_length=100,
        default="200",
        blank=True,
        validators=[validate_status_codes],
        help_text=f"Comma-separated, e.g. 200,201; empty: any of {DEFAULT_SUCCESS_TEXT}.",
    )
    check_type = models.CharField(max_length=12, choices=Check.choices, blank=True, default="")
    check_path = models.CharField(
        "JSON field", max_length=200, blank=True, help_text="Dotted path, e.g. data.status"
    )
    check_value = models.CharField(max_length=500, blank=True)
    extract = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_extractions],
        help_text="Flow mode: variables taken from the response, for later steps.",
    )
    poll_until_path = models.CharField(
        "poll until JSON path",
        max_length=200,
        blank=True,
        help_text="Flow mode: repeat the step until this JSON path (e.g. $.status) has the "
        "value below. Empty: no polling.",
    )
    poll_until_value = models.CharField("poll until value", max_length=500, blank=True)
    poll_max_attempts = models.PositiveIntegerField(
        "poll attempts",
        null=True,
        blank=True,
        validators=[
            MinValueValidator(1, POLL_RULE),
            MaxValueValidator(MAX_POLL_ATTEMPTS, POLL_RULE),
        ],
        help_text=f"Default {DEFAULT_POLL_ATTEMPTS}.",
    )
    poll_interval_s = models.FloatField(
        "poll interval (s)",
        null=True,
        blank=True,
        validators=[
            MinValueValidator(0, POLL_RULE),
            MaxValueValidator(MAX_POLL_INTERVAL_S, POLL_RULE),
        ],
        help_text=f"Default {DEFAULT_POLL_INTERVAL_S:g}.",
    )

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "name"], name="unique_step_name"),
        ]

    # The secrets to mask when the step is named, when its definition's are known (the admin
    # sets them); else its own secret headers'.
    shown_secret_values: set[str] | None = None

    def __str__(self) -> str:
        # A step is named in admin inline labels and history: a secret repeated in its path
        # is masked there too.
        values = self.shown_secret_values
        if values is None:
            headers = self.headers if isinstance(self.headers, dict) else {}
            secret = self.secret_headers if isinstance(self.secret_headers, list) else []
            values = secret_values({"steps": [{"headers": headers, "secret_headers": secret}]})
        return redact(f"{self.method} {self.path}", values)

    def clean(self) -> None:
        if self.check_type == self.Check.CONTAINS and not self.check_value:
            raise ValidationError({"check_value": "Give the text the body must contain."})
        if self.check_type == self.Check.JSON_EQUALS and not self.check_path:
            raise ValidationError({"check_path": "Give the dotted JSON field to compare."})
        if self.body and self.method in ("GET", "HEAD"):
            raise ValidationError({"body": f"A {self.method} request carries no body."})
        secret_problems = secret_header_problems(self.secret_headers, self.headers)
        if secret_problems:
            raise ValidationError({"secret_headers": secret_problems})
        polled = self.poll_max_attempts is not None or self.poll_interval_s is not None
        if (polled or self.poll_until_value) and not self.poll_until_path.strip():
            raise ValidationError(
                {"poll_until_path": "Give the JSON path to poll, e.g. $.status (or clear the "
                 "other poll fields)."}
            )  # fmt: skip

    @property
    def poll(self) -> dict[str, Any] | None:
        """The step's poll in the document's shape, None when it does not poll."""
        if not self.poll_until_path.strip():
            return None
        attempts, interval = self.poll_max_attempts, self.poll_interval_s
        return {
            "until_path": self.poll_until_path.strip(),
            "until_value": self.poll_until_value,
            "max_attempts": DEFAULT_POLL_ATTEMPTS if attempts is None else attempts,
            "interval_s": DEFAULT_POLL_INTERVAL_S if interval is None else interval,
        }


class LoadTestStage(models.Model):
    definition = models.ForeignKey(
        LoadTestDefinition, on_delete=models.CASCADE, related_name="stages"
    )
    order = models.PositiveIntegerField(default=0)
    duration_s = models.PositiveIntegerField(
        "duration (s)", validators=[MinValueValidator(1), MaxValueValidator(MAX_DURATION_S)]
    )
    target = models.FloatField(
        help_text="Users (closed model) or req/s (open model) reached at the end of the stage.",
        validators=[positive],
    )

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.duration_s}s -> {self.target:g}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"
    ERROR = "error"
    SKIPPED = "skipped"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(models.TextChoices):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    CLI = "cli"
    API = "api"


class LoadTestRun(models.Model):
    definition = models.ForeignKey(
        LoadTestDefinition, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    name = models.CharField(max_length=200, help_text="The definition's name when the run started.")
    config = models.JSONField(help_text="Frozen copy of the definition when the run was queued.")
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    planned_duration_s = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    worker_host = models.CharField(max_length=200, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    worker_node = models.CharField(
        max_length=200, blank=True, help_text="The Celery node name of the worker that ran it."
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    shards = models.PositiveSmallIntegerField(
        default=1, help_text="Shard tasks that generate the load together."
    )
    start_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Sharded runs: the common start every shard waits for, set once all are ready.",
    )
    keep = models.BooleanField(
        default=False,
        help_text="Never pruned: its intervals and the captures tied to it are kept for good.",
    )

    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    duration_s = models.FloatField(null=True, blank=True)
    throughput_rps = models.FloatField(null=True, blank=True)
    error_rate_pct = models.FloatField(null=True, blank=True)
    latency_min_ms = models.FloatField("latency min (ms)", null=True, blank=True)
    latency_mean_ms = models.FloatField("latency mean (ms)", null=True, blank=True)
    latency_max_ms = models.FloatField("latency max (ms)", null=True, blank=True)
    latency_stddev_ms = models.FloatField("latency stddev (ms)", null=True, blank=True)
    latency_p50_ms = models.FloatField("latency p50 (ms)", null=True, blank=True)
    latency_p75_ms = models.FloatField("latency p75 (ms)", null=True, blank=True)
    latency_p90_ms = models.FloatField("latency p90 (ms)", null=True, blank=True)
    latency_p95_ms = models.FloatField("latency p95 (ms)", null=True, blank=True)
    latency_p99_ms = models.FloatField("latency p99 (ms)", null=True, blank=True)
    latency_p999_ms = models.FloatField("latency p999 (ms)", null=True, blank=True)
    service_min_ms = models.FloatField("service time min (ms)", null=True, blank=True)
    service_mean_ms = models.FloatField("service time mean (ms)", null=True, blank=True)
    service_max_ms = models.FloatField("service time max (ms)", null=True, blank=True)
    service_stddev_ms = models.FloatField("service time stddev (ms)", null=True, blank=True)
    service_p50_ms = models.FloatField("service time p50 (ms)", null=True, blank=True)
    service_p75_ms = models.FloatField("service time p75 (ms)", null=True, blank=True)
    service_p90_ms = models.FloatField("service time p90 (ms)", null=True, blank=True)
    service_p95_ms = models.FloatField("service time p95 (ms)", null=True, blank=True)
    service_p99_ms = models.FloatField("service time p99 (ms)", null=True, blank=True)
    service_p999_ms = models.FloatField("service time p999 (ms)", null=True, blank=True)
    latency_histogram = models.TextField(blank=True, help_text="HdrHistogram V2, compressed base64")
    service_histogram = models.TextField(blank=True)
    iterations = models.BigIntegerField(default=0, help_text="Flow mode: iterations completed.")
    iterations_failed = models.BigIntegerField(default=0)
    iteration_p50_ms = models.FloatField("iteration p50 (ms)", null=True, blank=True)
    iteration_p95_ms = models.FloatField("iteration p95 (ms)", null=True, blank=True)
    iteration_p99_ms = models.FloatField("iteration p99 (ms)", null=True, blank=True)
    iteration_histogram = models.TextField(blank=True)
    errors_by_class = models.JSONField(default=dict, blank=True)
    steps_summary = models.JSONField(default=dict, blank=True)
    health = models.JSONField(default=dict, blank=True)
    valid = models.BooleanField(null=True, blank=True)
    threshold_results = models.JSONField(default=list, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            models.Index(fields=["definition", "-created_at"], name="run_definition_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("loadtests:run", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def percentiles(self, kind: str = "latency") -> dict[str, Any]:
        names = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
        return {name: getattr(self, f"{kind}_{name}_ms") for name in names}


class RunInterval(models.Model):
    """One second of one run (and one shard): enough to recompute any window exactly."""

    run = models.ForeignKey(LoadTestRun, on_delete=models.CASCADE, related_name="intervals")
    shard = models.PositiveSmallIntegerField(default=0)
    index = models.PositiveIntegerField(help_text="Seconds since the run started.")
    started_at = models.DateTimeField()
    length_s = models.FloatField(default=1.0)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    throughput_rps = models.FloatField(default=0)
    target = models.FloatField(default=0, help_text="Users or req/s planned at that moment.")
    active_users = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    in_flight_mean = models.FloatField(
        null=True, help_text="In flight, sampled every 50 ms: the second's mean."
    )
    in_flight_max = models.PositiveIntegerField(null=True, help_text="... and its peak.")
    late_starts = models.PositiveIntegerField(default=0)
    per_step = models.JSONField(
        default=dict, blank=True, help_text="{step: {requests, errors, ...}} of this second."
    )
    latency_p50_ms = models.FloatField(null=True)
    latency_p95_ms = models.FloatField(null=True)
    latency_p99_ms = models.FloatField(null=True)
    latency_max_ms = models.FloatField(null=True)
    service_p50_ms = models.FloatField(null=True)
    service_p95_ms = models.FloatField(null=True)
    service_p99_ms = models.FloatField(null=True)
    latency_histogram = models.TextField(blank=True)
    service_histogram = models.TextField(blank=True)
    errors_by_class = models.JSONField(default=dict, blank=True)
    iterations = models.PositiveIntegerField(default=0)
    iterations_failed = models.PositiveIntegerField(default=0)
    iteration_histogram = models.TextField(blank=True, help_text="Flow mode: whole journeys.")
    cpu_pct = models.FloatField(null=True)
    loop_lag_ms = models.FloatField(null=True)

    class Meta:
        ordering = ["run", "index", "shard"]
        constraints = [
            models.UniqueConstraint(fields=["run", "shard", "index"], name="unique_run_interval"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} second {self.index}"


class WorkerHeartbeat(models.Model):
    """A Celery worker's last sign of life, written by the worker itself every few seconds, so
    pages can say whether anyone consumes a queue without a broadcast over the broker."""

    node = models.CharField(max_length=200, unique=True, help_text="The Celery node name.")
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["node"]

    def __str__(self) -> str:
        return self.node


class ApiToken(models.Model):
    """A user's token for the HTTP API (`Authorization: Bearer <token>`), acting with that
    user's permissions. Only its SHA-256 is stored: the token is shown once, as it is created
    in the admin, and never again (loadtests/tokens.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'CI of billing'.")
    prefix = models.CharField(
        max_length=tokens.PREFIX_CHARS,
        unique=True,
        editable=False,
        help_text="The token's first characters, to tell tokens apart.",
    )
    token_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False, help_text="A revoked token is refused.")

    class Meta:
        ordering = ["user", "name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Revocation is final: an owner may not undo an admin's revocation, and a leaked
        # token, once revoked, must never answer again.
        if (
            self.pk
            and not self.revoked
            and ApiToken.objects.filter(pk=self.pk, revoked=True).exists()
        ):
            raise ValidationError(
                {"revoked": "A revoked token stays revoked: make a new token instead."}
            )
        super().save(*args, **kwargs)

    def set_new_token(self) -> str:
        """Give the row a new token; returns it: the one time it is ever seen."""
        token = tokens.new_token()
        self.prefix, self.token_hash = tokens.prefix_of(token), tokens.digest_of(token)
        return token


class ShardStatus(models.TextChoices):
    # One name per meaning: a shard that is queued, running, interrupted or ended in an error
    # says it with its run's value (RunStatus); `failed` is a run's threshold verdict only.
    QUEUED = RunStatus.QUEUED.value
    READY = "ready"
    RUNNING = RunStatus.RUNNING.value
    DONE = "done"
    ERROR = RunStatus.ERROR.value
    INTERRUPTED = RunStatus.INTERRUPTED.value


class RunShard(models.Model):
    """One of a sharded run's generators: a Celery task on some worker, generating 1/N of the
    load and recording its own intervals (RunInterval.shard)."""

    run = models.ForeignKey(LoadTestRun, on_delete=models.CASCADE, related_name="shard_rows")
    index = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=12, choices=ShardStatus.choices, default=ShardStatus.QUEUED
    )
    worker_node = models.CharField(max_length=200, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    clock_offset_ms = models.FloatField(
        null=True,
        blank=True,
        help_text="This worker's clock minus the database server's now(), when it got ready.",
    )
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    throughput_rps = models.FloatField(null=True, blank=True)
    health = models.JSONField(default=dict, blank=True)
    latency_histogram = models.TextField(blank=True)
    service_histogram = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="loadtests_one_shard_per_index")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} shard {self.index}"


class AlertKind(models.TextChoices):
    REGRESSION = "regression", "Regression against the baseline"
    THRESHOLD = "threshold", "Threshold failed (scheduled run)"


class Alert(models.Model):
    """A run that regressed against its baseline, or a scheduled run that failed a threshold;
    shown on the overview until someone acknowledges it."""

    definition = models.ForeignKey(
        LoadTestDefinition, null=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    run = models.ForeignKey(LoadTestRun, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=12, choices=AlertKind.choices)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind"], name="loadtests_one_alert_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: run {self.run_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class AlertDelivery(models.Model):
    """One channel of one alert (an email, a webhook POST) with its attempts."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=[("email", "email"), ("webhook", "webhook")])
    destination = models.CharField(
        max_length=500, help_text="The addresses, or the webhook URL without its credentials."
    )
    status = models.CharField(
        max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["alert", "channel"]

    def __str__(self) -> str:
        return f"{self.channel} for alert {self.alert_id}: {self.status}"


class AgentSecond(models.Model):
    """What the agent in the target measured of one step of one run in one second, summed
    over the target's processes: server and database time histograms (sparse {HdrHistogram
    counts index: count} in the engine's layout, µs), totals, and the costliest statements and
    N+1 groups."""

    run = models.ForeignKey(LoadTestRun, on_delete=models.CASCADE, related_name="agent_seconds")
    step = models.CharField(max_length=200)
    second = models.DateTimeField(help_text="The second the requests started in.")
    requests = models.PositiveIntegerField(default=0)
    server_ms = models.FloatField(default=0, help_text="Sum of the requests' server time.")
    cpu_ms = models.FloatField(default=0, help_text="Sum of the serving threads' CPU time.")
    db_ms = models.FloatField(default=0)
    queries = models.PositiveIntegerField(default=0)
    queries_max = models.PositiveIntegerField(default=0)
    cache_calls = models.PositiveIntegerField(default=0)
    cache_ms = models.FloatField(default=0)
    server_counts = models.JSONField(default=dict, blank=True)
    db_counts = models.JSONField(default=dict, blank=True)
    statuses = models.JSONField(default=dict, blank=True)
    views = models.JSONField(default=dict, blank=True)
    top_sql = models.JSONField(
        default=list, blank=True, help_text="[{fingerprint, count, total_us, sql}], costliest 1st."
    )
    n_plus_one = models.JSONField(
        default=list, blank=True,
        help_text="[{fingerprint, view, frame, sql, requests, count}]: the same SQL 5+ times "
        "in one request.",
    )  # fmt: skip

    class Meta:
        ordering = ["run", "step", "second"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step", "second"], name="agent_second_once_per_step"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.step} {self.second:%H:%M:%S}"
