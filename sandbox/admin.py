from django.contrib import admin

from core.admin import ReadOnlyAdmin
from sandbox.models import SandboxUid, SandboxUidCounter


@admin.register(SandboxUid)
class SandboxUidAdmin(ReadOnlyAdmin):
    list_display = ["uid", "kind", "held", "host", "pid", "holder", "changed_at"]
    list_filter = ["kind", "held", "host"]
    search_fields = ["holder"]


@admin.register(SandboxUidCounter)
class SandboxUidCounterAdmin(ReadOnlyAdmin):
    list_display = ["kind", "position"]
