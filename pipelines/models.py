import json

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils import timezone

from core.models import Manifest, Project
from pipelines.parameters import ordered_parameters
from pipelines.tracking_models import RunParam, RunTag  # noqa: F401  (models of this app)

# A run's time limit when it gives none: a day (AICENTER_MAX_RUN_SECONDS caps what one may give).
DEFAULT_MAX_RUN_SECONDS = 24 * 3600
# A finished run's worker writes its results a moment later; pages poll this long at most for
# them, in case that worker is gone.
SETTLE_SECONDS = 30


class PipelineRun(models.Model):
    """One pipeline run. This row is the system of record; Redis only carries the job."""

    TRAIN, EVALUATE, FULL = "train", "evaluate", "full"
    TYPES = [(TRAIN, "Training run"), (EVALUATE, "Evaluation run"), (FULL, "Full pipeline run")]

    SCHEDULED, QUEUED, PACKAGING, RUNNING = "scheduled", "queued", "packaging", "running"
    SUCCESSFUL, FAILED, KILLED = "successful", "failed", "killed"
    STATUSES = [
        (SCHEDULED, "Scheduled"),
        (QUEUED, "Queued"),
        (PACKAGING, "Packaging"),
        (RUNNING, "Running"),
        (SUCCESSFUL, "Successful"),
        (FAILED, "Failed"),
        (KILLED, "Killed"),
    ]
    UNFINISHED = (SCHEDULED, QUEUED, PACKAGING, RUNNING)
    FINISHED = (SUCCESSFUL, FAILED, KILLED)

    # Indexed by the list's indexes below, which all begin with it: an index of its own would
    # only be one more to write at each of a run's writes (every index is, 80,000 runs an hour).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="pipeline_runs", db_index=False
    )
    name = models.CharField(max_length=200, blank=True)
    # Notes in Markdown, written by people after the fact or by mlflow.start_run(description=)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=10, choices=TYPES, default=TRAIN)
    status = models.CharField(max_length=12, choices=STATUSES, default=QUEUED)  # run_status

    package = models.ForeignKey("packages.Package", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(
        "packages.PackageVersion", on_delete=models.PROTECT, related_name="pipeline_runs"
    )
    dataset = models.ForeignKey(
        "datasets.Dataset", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    dataset_folder = models.CharField(max_length=1024, blank=True)
    evaluation_dataset = models.ForeignKey(
        "datasets.Dataset", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    evaluation_folder = models.CharField(max_length=1024, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    gpu = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue = models.CharField(max_length=50, blank=True)
    job_id = models.CharField(max_length=100, blank=True)
    enqueue_count = models.PositiveSmallIntegerField(default=0)
    # How often its job vanished from Redis while Redis and the database were up (the sweeper
    # enqueues it again; a loss an outage may explain is not counted).
    lost_count = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    # The worker renews this while the run runs: a stale heartbeat means the worker is gone.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The user's process group on that worker, so a lost run's processes can be ended.
    process_group = models.IntegerField(null=True, blank=True)
    # What the run's sandbox gave it (sandbox/sandbox.py describe()): shown on its
    # page and in _results.json. Empty until its code starts.
    sandbox = models.JSONField(default=dict, blank=True)
    max_run_seconds = models.PositiveIntegerField(default=DEFAULT_MAX_RUN_SECONDS)
    # Parameters the package logged itself (mlflow.log_param), beside the input parameters.
    logged_params = models.JSONField(default=dict, blank=True)
    # CUDA_VISIBLE_DEVICES the worker gave the run: empty means it ran without a GPU.
    gpu_devices = models.CharField(max_length=100, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # The time zone it was scheduled in (at a moment, or by its recurring pipeline), to show
    # its times as its author set them; empty for a run started now.
    timezone = models.CharField(max_length=64, blank=True)
    schedule = models.ForeignKey(  # indexed by run_list_schedule, which begins with it
        "pipelines.Schedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        db_index=False,
    )
    failure_reason = models.TextField(blank=True)
    # The run this one retried (Retry): each page links to the other.
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )

    artifacts = models.ForeignKey(
        Manifest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    snapshot = models.ForeignKey(
        Manifest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    evaluation_snapshot = models.ForeignKey(
        Manifest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    score = models.FloatField(null=True, blank=True)
    # `_results.json` as written: text, so its keys keep the order they were written in (jsonb
    # sorts them).
    results_text = models.TextField(blank=True)
    # Where the time went: [{"name", "start", "end"}] with epoch seconds, platform and user code.
    phases = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list's pages are read by keyset from these, one per filter and order, each
        # ending in the list's own order (pipelines/run_pages.py).
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="run_list_newest"),
            models.Index(
                fields=["project", "status", "-created_at", "-id"], name="run_list_status"
            ),
            models.Index(fields=["project", "type", "-created_at", "-id"], name="run_list_type"),
            models.Index(
                fields=["project", "package", "-created_at", "-id"], name="run_list_package"
            ),
            models.Index(fields=["schedule", "-created_at", "-id"], name="run_list_schedule"),
            models.Index(
                fields=["project", "-score", "-created_at", "-id"], name="run_list_score_high"
            ),
            models.Index(
                fields=["project", "score", "-created_at", "-id"], name="run_list_score_low"
            ),
            # The sweeper's and the workers' look at unclaimed runs, in every project. Not
            # db_index=True: on PostgreSQL that adds a LIKE index too, and nothing matches a
            # status by pattern.
            models.Index(fields=["status"], name="run_status"),
        ]

    def __str__(self):
        return f"Pipeline run {self.pk}"

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def is_settled(self):
        """Finished and fully written. A kill is final at once, but the worker of a running run
        adds its results, phases and last log lines a moment later: pages keep polling till
        then (30 s at most, in case that worker is gone)."""
        if not self.is_finished:
            return False
        if self.results_text or not self.finished_at:
            return True
        return (timezone.now() - self.finished_at).total_seconds() > SETTLE_SECONDS

    @property
    def ordered_parameters(self):
        return ordered_parameters(self.parameters)

    @property
    def sandbox_summary(self) -> str:
        """'no network, memory ≤ 2,048 MB (cgroup v1), disk ≤ 51,200 MB, files ≤ 200,000
        (filesystem), bubblewrap 0.8.0 (system)', for the log."""
        return ", ".join(part for part in (self.sandbox_limits, self.sandbox_bubblewrap) if part)

    @property
    def sandbox_limits(self) -> str:
        """'no network, memory ≤ 2,048 MB (cgroup v1), disk ≤ 51,200 MB, files ≤ 200,000
        (filesystem), no keyrings, no new user namespaces (seccomp)', for the page."""
        description = self.sandbox
        if not description:
            return ""
        if not description.get("enabled"):
            return "not sandboxed (AICENTER_SANDBOX=off)"
        parts = [
            "outbound network allowed by the project" if description["network"] else "no network",
        ]
        if description.get("memory_mb"):
            enforced = description["memory_enforced_by"]
            parts.append(f"memory ≤ {description['memory_mb']:,} MB ({enforced})")
        if description.get("disk_mb"):
            parts.append(f"disk ≤ {description['disk_mb']:,} MB")
        if description.get("files"):
            parts.append(f"files ≤ {description['files']:,}")
        if description.get("disk_enforced_by") and (
            description.get("disk_mb") or description.get("files")
        ):
            parts[-1] += f" ({description['disk_enforced_by']})"
        if description.get("seccomp"):
            parts.append(description["seccomp"])
        return ", ".join(parts)

    @property
    def sandbox_bubblewrap(self) -> str:
        """'bubblewrap 0.8.0 (system)': which bwrap made the sandbox ('' before it was said)."""
        bwrap = (self.sandbox or {}).get("bubblewrap")
        return f"bubblewrap {bwrap['version']} ({bwrap['source']})" if bwrap else ""

    @property
    def output_version(self):
        """The package version this run trained, or None. The link is stored on the version
        (PackageVersion.pipeline_run, reverse name trained_version), made only as the run
        ends Successful: for any other run, no query."""
        if self.status != self.SUCCESSFUL:
            return None
        try:
            return self.trained_version
        except ObjectDoesNotExist:
            return None

    @property
    def results(self):
        return json.loads(self.results_text) if self.results_text else None

    @property
    def duration(self):
        """Seconds from start to end (or to now while running)."""
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


class LogChunk(models.Model):
    """A piece of a run's stdout/stderr, appended while it runs so the page and the API can
    show it live, from any machine."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="log_chunks")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="log_chunk_once")]
        ordering = ["seq"]

    def __str__(self):
        return f"log {self.seq} of run {self.run_id}"


class Schedule(models.Model):
    """A recurring pipeline: the inputs of a run, and when to start the next one.

    Each firing creates an ordinary PipelineRun linked here. The next time lives in this row;
    RQ's scheduler only carries the wake-up, and is re-armed from here if Redis lost it."""

    HOURS, DAYS, WEEKS = "hours", "days", "weeks"
    UNITS = [(HOURS, "hours"), (DAYS, "days"), (WEEKS, "weeks")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # What to run: the same inputs pipeline_run_create takes.
    inputs = models.JSONField(default=dict)
    # When: every `every` `unit`s from `starts_at`, or a cron expression; in `timezone`.
    every = models.PositiveIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=10, choices=UNITS, blank=True)
    cron = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    starts_at = models.DateTimeField()
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    paused = models.BooleanField(default=False)
    job_id = models.CharField(max_length=100, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Firings missed while nothing ran are caught up with one run; how many more were skipped
    # then, and when that was (the last time it happened; ML Logs has each time and its list).
    skipped_count = models.PositiveIntegerField(default=0)
    skipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["next_run_at", "id"]

    def __str__(self):
        return self.name or f"Schedule {self.pk}"

    @property
    def rule(self):
        if self.cron:
            return f"cron {self.cron}"
        if self.every == 1:
            return f"every {self.unit[:-1]}"
        return f"every {self.every} {self.unit}"


class MetricSeries(models.Model):
    """One metric of a run (loss, accuracy, score…): its summary, kept up to date as points
    arrive, so lists and comparisons never read points. The points are in MetricChunk rows."""

    # not db_index: metric_once's index (run, name) finds a run's metrics
    run = models.ForeignKey(
        PipelineRun, on_delete=models.CASCADE, related_name="metrics", db_index=False
    )
    name = models.CharField(max_length=250)
    # The run's project and created_at, copied (neither changes): the runs list sorted by a
    # metric reads the metric's runs, in order, from one index of these rows (Meta), without
    # looking up 25,000 runs to skip an old `?page=500`.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    run_created_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    last = models.FloatField(null=True, blank=True)
    min = models.FloatField(null=True, blank=True)
    max = models.FloatField(null=True, blank=True)
    last_step = models.BigIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="metric_once")]
        # The runs list sorted by a metric reads its runs in the list's order here, ties
        # newest first: one index for each direction, as for the score's.
        indexes = [
            models.Index(
                fields=["project", "name", "-last", "-run_created_at", "-run"],
                name="metric_high",
            ),
            models.Index(
                fields=["project", "name", "last", "-run_created_at", "-run"], name="metric_low"
            ),
        ]
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} of run {self.run_id}"

    @classmethod
    def of(cls, run, name, **fields) -> "MetricSeries":
        """A new series of `run` (unsaved), with the run's keys copied."""
        return cls(
            run=run, project_id=run.project_id, run_created_at=run.created_at, name=name, **fields
        )


class MetricChunk(models.Model):
    """Consecutive points of a series, packed (pipelines/metrics.py): a run's 100,000 points
    are a hundred rows, read in one query."""

    series = models.ForeignKey(MetricSeries, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    count = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "seq"], name="chunk_once")]

    def __str__(self):
        return f"points {self.seq} of {self.series}"
