from django.contrib import admin

from core.admin import ReadOnlyAdmin
from pipelines.models import (
    LogChunk,
    MetricChunk,
    MetricSeries,
    PipelineRun,
    RunParam,
    RunTag,
    Schedule,
)


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "name",
        "type",
        "status",
        "package",
        "version",
        "output_version",
        "score",
        "queue",
        "worker",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "type", "queue", "gpu", "project"]
    search_fields = ["name", "package__name", "failure_reason", "job_id", "worker"]
    list_select_related = ["package", "version__package", "trained_version__package"]
    raw_id_fields = [
        "version",
        "dataset",
        "evaluation_dataset",
        "artifacts",
        "snapshot",
        "evaluation_snapshot",
        "schedule",
        "created_by",
    ]
    date_hierarchy = "created_at"
    readonly_fields = ["heartbeat_at", "process_group", "enqueue_count", "phases", "results_text"]


@admin.register(LogChunk)
class LogChunkAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "created_at"]
    raw_id_fields = ["run"]
    search_fields = ["text"]


@admin.register(MetricSeries)
class MetricSeriesAdmin(ReadOnlyAdmin):
    list_display = ["run", "name", "count", "last", "min", "max"]
    raw_id_fields = ["run"]
    search_fields = ["name"]


@admin.register(RunTag, RunParam)
class RunValueAdmin(ReadOnlyAdmin):
    """Tags are edited on the run's page (pipelines/tracking.py); params are an index."""

    list_display = ["run", "key", "value"]
    search_fields = ["key", "value"]


@admin.register(MetricChunk)
class MetricChunkAdmin(ReadOnlyAdmin):
    list_display = ["series", "seq", "count"]
    raw_id_fields = ["series"]
    exclude = ["data"]  # packed points: read them through the run's metrics API


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "project",
        "rule",
        "timezone",
        "next_run_at",
        "last_run_at",
        "paused",
    ]
    list_filter = ["paused", "unit", "project"]
    search_fields = ["name", "cron"]
