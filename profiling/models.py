"""Processes to profile, the captures taken of them, and what each capture found: the top
functions of a CPU profile, the memory samples of a monitor window."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

CAPTURE_ANY_PROCESS = "capture_any_process"


class ProfileTarget(models.Model):
    """How to find a live process: exactly one of a PID, a PID file or a command-line match."""

    name = models.CharField(max_length=100, unique=True)
    pid = models.PositiveIntegerField("PID", null=True, blank=True)
    pid_file = models.CharField(
        "PID file", max_length=500, blank=True, help_text="A file holding the process' PID."
    )
    cmdline_match = models.CharField(
        "command-line match",
        max_length=500,
        blank=True,
        help_text="Text the process' command line contains, e.g. 'manage.py runserver 8001'. "
        "The oldest matching process is taken.",
    )
    include_children = models.BooleanField(
        default=False,
        help_text="Profile its child processes too (gunicorn or Celery prefork workers).",
    )
    # Declared here, not on the definition: loadtests knows nothing of the profiler, which
    # listens to its run_started signal instead.
    load_tests = models.ManyToManyField(
        "loadtests.LoadTestDefinition",
        blank=True,
        related_name="profile_targets",
        help_text="Runs of these load tests record this process' memory throughout and take a "
        "CPU profile over their steady state.",
    )
    # -- allocation captures (memray) --
    allocations_during_runs = models.BooleanField(
        "allocations during runs",
        default=False,
        help_text="Runs of its load tests also take an allocation capture (memray) of this "
        "process over the second half of their steady state. Needs memray installed in the "
        "target's Python, and slows its allocations meanwhile.",
    )
    # -- end of allocation captures --
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        given = [bool(self.pid), bool(self.pid_file.strip()), bool(self.cmdline_match.strip())]
        if sum(given) != 1:
            message = "give exactly one of PID, PID file or command-line match"
            raise ValidationError({"pid": message, "pid_file": message, "cmdline_match": message})


class CaptureKind(models.TextChoices):
    CPU = "cpu", "CPU profile"
    MEMORY = "memory", "Memory trend"
    THREADS = "threads", "Thread dump"
    TRACE = "trace", "Trace timeline"
    # Allocation captures (memray attach): the heap by stack; read from the capture's summary.
    ALLOCATIONS = "allocations", "Allocations"


class CaptureStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"


class Verdict(models.TextChoices):
    LEAK = "leak", "Leak"
    STABLE = "stable", "Stable"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class ProfileCapture(models.Model):
    kind = models.CharField(max_length=16, choices=CaptureKind.choices)
    target = models.ForeignKey(
        ProfileTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="captures"
    )
    pid = models.PositiveIntegerField(
        "PID", null=True, blank=True, help_text="The process profiled (resolved from the target)."
    )
    include_children = models.BooleanField(default=False)
    duration_s = models.FloatField(default=10.0)
    rate_hz = models.PositiveIntegerField(
        default=100, help_text="CPU and trace sampling rate (samples per second)."
    )
    interval_ms = models.PositiveIntegerField(
        default=100, help_text="Memory sampling interval (milliseconds)."
    )
    idle = models.BooleanField(default=False, help_text="Keep idle frames (off by default).")
    status = models.CharField(
        max_length=16, choices=CaptureStatus.choices, default=CaptureStatus.QUEUED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    run = models.ForeignKey(
        "loadtests.LoadTestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="profile_captures",
    )
    tool = models.CharField(max_length=100, blank=True)
    tool_version = models.CharField(max_length=100, blank=True)
    overhead_pct = models.FloatField(
        null=True, blank=True, help_text="The capture's measured cost on the target, when known."
    )
    python_version = models.CharField(max_length=32, blank=True)
    artefacts = models.JSONField(
        default=dict, blank=True, help_text="Artefact name -> path under PROFILING_ARTEFACT_DIR."
    )
    summary = models.JSONField(default=dict, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    # Set from its creator's profiling.capture_any_process (or the CLI's --any-process), never
    # from a form: without it, preflight refuses a PID that is not a registered target's.
    any_process = models.BooleanField(
        default=False,
        help_text="May capture a process that is not a registered profile target's.",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["run", "kind"])]
        permissions = [
            (CAPTURE_ANY_PROCESS, "Can capture any process, not only registered targets"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} of PID {self.pid or '?'}"


class FunctionStat(models.Model):
    """One function of a CPU capture: samples with it on top (self) and anywhere (total)."""

    capture = models.ForeignKey(
        ProfileCapture, on_delete=models.CASCADE, related_name="function_stats"
    )
    function = models.CharField(max_length=500)
    file = models.CharField(max_length=1000)
    line = models.PositiveIntegerField(default=0)
    self_samples = models.PositiveIntegerField()
    total_samples = models.PositiveIntegerField()
    self_pct = models.FloatField()
    total_pct = models.FloatField()

    class Meta:
        ordering = ["-self_samples", "-total_samples", "pk"]
        indexes = [models.Index(fields=["function", "file"])]

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line}) {self.self_pct:.1f}%"


class MemorySample(models.Model):
    capture = models.ForeignKey(
        ProfileCapture, on_delete=models.CASCADE, related_name="memory_samples"
    )
    at = models.DateTimeField()
    elapsed_s = models.FloatField()
    rss_bytes = models.BigIntegerField()
    uss_bytes = models.BigIntegerField(null=True, blank=True)
    vms_bytes = models.BigIntegerField()
    cpu_pct = models.FloatField()
    threads = models.PositiveIntegerField()
    open_files = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["capture", "elapsed_s"]

    def __str__(self) -> str:
        return f"{self.elapsed_s:.1f}s: {self.rss_bytes / 1e6:.1f} MB RSS"


# -- continuous monitoring of registered targets (profiling.monitoring) ----------------------

ACKNOWLEDGE_MONITOR_ALERT = "acknowledge_monitoralert"


class Resolution(models.TextChoices):
    """How much time one monitor sample stands for: raw readings are rolled up into minutes,
    minutes into hours, each tier kept for its own retention."""

    RAW = "raw", "Raw"
    MINUTE = "minute", "1 minute"
    HOUR = "hour", "1 hour"


class MonitorSample(models.Model):
    """A target's processes at one reading (raw), or the mean and maximum of the readings of a
    minute or an hour, summed over the target's processes. `pid` is the root process: a change
    of it is a restart, and no line is drawn across one."""

    target = models.ForeignKey(
        ProfileTarget, on_delete=models.CASCADE, related_name="monitor_samples"
    )
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    at = models.DateTimeField(help_text="The reading's time; a bucket's start when rolled up.")
    pid = models.PositiveIntegerField("PID")
    samples = models.PositiveIntegerField(default=1, help_text="Raw readings behind this row.")
    rss_bytes = models.BigIntegerField(help_text="Mean over the bucket when rolled up.")
    rss_max_bytes = models.BigIntegerField()
    uss_bytes = models.BigIntegerField(null=True, blank=True)
    uss_max_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_pct = models.FloatField()
    cpu_max_pct = models.FloatField()
    threads = models.PositiveIntegerField()
    open_files = models.PositiveIntegerField(null=True, blank=True)
    # Raw readings only: [{pid, rss_bytes, uss_bytes, cpu_pct, threads, open_files}, ...].
    processes = models.JSONField(default=list, blank=True)
    # The agent's cumulative GC figures at the reading (or the bucket's last), when it runs.
    gc = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["target", "resolution", "at"]
        indexes = [models.Index(fields=["target", "resolution", "at"])]

    def __str__(self) -> str:
        return f"{self.target_id} {self.resolution} {self.at:%Y-%m-%d %H:%M:%S}"


class MonitorRestart(models.Model):
    """A new process behind a monitored target (a new PID behind the same command line)."""

    target = models.ForeignKey(
        ProfileTarget, on_delete=models.CASCADE, related_name="monitor_restarts"
    )
    at = models.DateTimeField()
    old_pid = models.PositiveIntegerField(null=True, blank=True)
    new_pid = models.PositiveIntegerField()

    class Meta:
        ordering = ["target", "at"]
        indexes = [models.Index(fields=["target", "at"])]

    def __str__(self) -> str:
        return f"{self.target_id}: {self.old_pid} -> {self.new_pid} at {self.at:%Y-%m-%d %H:%M}"


class MonitorAlert(models.Model):
    """A leak the monitor found over its leak window. One open alert per target: no other is
    raised for it until someone acknowledges this one. `deliveries` holds each channel's state:
    {"email:ops@x": {"status": "sent", "attempts": 1, "error": ""}, ...}."""

    target = models.ForeignKey(
        ProfileTarget, on_delete=models.CASCADE, related_name="monitor_alerts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    deliveries = models.JSONField(default=dict, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [(ACKNOWLEDGE_MONITOR_ALERT, "Can acknowledge a monitoring leak alert")]
        constraints = [
            models.UniqueConstraint(
                fields=["target"],
                condition=models.Q(acknowledged_at=None),
                name="profiling_one_open_monitor_alert",
            )
        ]

    def __str__(self) -> str:
        return f"Leak alert #{self.pk} of target {self.target_id}"
