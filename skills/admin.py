from django.contrib import admin

from core.admin import ReadOnlyAdmin
from skills.models import Skill, SkillCall, SkillHost, SkillMinute, SkillReplica


@admin.register(Skill)
class SkillAdmin(ReadOnlyAdmin):
    """Read-only: deploying, updating and undeploying go through the skill's page and the API
    (their services check roles and tell the skill hosts)."""

    list_display = [
        "name",
        "project",
        "package",
        "version",
        "alias",
        "serving",
        "status",
        "replicas",
    ]
    list_filter = ["status", "auto_update", "gpu", "project"]
    list_select_related = ["project", "package", "version__package", "serving__package"]
    search_fields = ["name", "package__name", "reason"]
    raw_id_fields = ["version", "serving", "failed_version", "created_by"]
    exclude = ["api_key_digest"]  # of no use to a person: the prefix tells keys apart


@admin.register(SkillHost)
class SkillHostAdmin(ReadOnlyAdmin):
    list_display = ["name", "gpu", "started_at", "seen_at"]


@admin.register(SkillReplica)
class SkillReplicaAdmin(ReadOnlyAdmin):
    list_display = ["skill", "version", "slot", "host", "state", "restarts", "ready_at"]
    list_filter = ["state"]
    list_select_related = ["skill", "version__package", "host"]


@admin.register(SkillCall)
class SkillCallAdmin(ReadOnlyAdmin):
    list_display = ["skill", "time", "milliseconds", "status"]
    list_filter = ["status"]
    raw_id_fields = ["skill"]


@admin.register(SkillMinute)
class SkillMinuteAdmin(ReadOnlyAdmin):
    list_display = ["skill", "minute", "calls", "errors"]
    raw_id_fields = ["skill"]
