from django.contrib import admin

from core.models import ApiToken, Blob, Manifest, ManifestEntry, Membership, Project

admin.site.site_header = "AI Center administration"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the product writes (runs, versions, logs, blobs): viewed here, never added,
    changed or deleted behind the services' back (an added run would never run; a deleted
    version would leave its blobs and lineage behind). The pages and the API do those."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["digest", "prefix"]

    def has_add_permission(self, request, obj=None):
        return False  # a token made here would never be shown: the tokens page makes them


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ["sha256", "size", "created_at"]
    search_fields = ["sha256"]
    date_hierarchy = "created_at"


class ManifestEntryInline(admin.TabularInline):
    model = ManifestEntry
    fields = ["path", "size", "blob"]
    readonly_fields = fields
    extra = 0
    show_change_link = False
    can_delete = False


@admin.register(Manifest)
class ManifestAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at"]


@admin.register(ManifestEntry)
class ManifestEntryAdmin(ReadOnlyAdmin):
    list_display = ["path", "manifest", "size", "blob"]
    search_fields = ["path", "blob__sha256"]
    list_select_related = ["manifest", "blob"]
    raw_id_fields = ["manifest", "blob"]
