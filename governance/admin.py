from django.contrib import admin

from core.admin import ReadOnlyAdmin
from core.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The ML Logs are append-only: read here, written only by core.events.record."""

    list_display = ["time", "project", "category", "action", "actor_name", "object_name"]
    list_filter = ["category", "project"]
    search_fields = ["actor_name", "object_key", "object_name", "message"]
    list_select_related = ["project"]
    raw_id_fields = ["project", "actor"]
    show_full_result_count = False  # counting a million events for each page helps nobody
