from django.contrib import admin

from core.admin import ReadOnlyAdmin
from environments.models import EnvironmentBuild


@admin.register(EnvironmentBuild)
class EnvironmentBuildAdmin(ReadOnlyAdmin):
    list_display = ["key", "python_version", "status", "started_at", "finished_at"]
    list_filter = ["status", "python_version"]
    search_fields = ["key", "detail"]
    exclude = ["versions"]
