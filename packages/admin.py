from django.contrib import admin

from core.admin import ReadOnlyAdmin
from packages.models import Package, PackageAlias, PackageVersion


class PackageVersionInline(admin.TabularInline):
    model = PackageVersion
    fields = ["major", "minor", "source", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "training_enabled", "gpu_required", "language", "created_at"]
    list_filter = ["project", "training_enabled", "gpu_required", "input_type"]
    search_fields = ["name", "description"]
    list_select_related = ["project"]
    inlines = [PackageVersionInline]


@admin.register(PackageVersion)
class PackageVersionAdmin(ReadOnlyAdmin):
    list_display = ["package", "major", "minor", "source", "file_count", "size", "created_at"]
    list_filter = ["source", "package__project"]
    search_fields = ["package__name"]
    list_select_related = ["package"]
    raw_id_fields = ["manifest", "parent"]


@admin.register(PackageAlias)
class PackageAliasAdmin(ReadOnlyAdmin):
    """Read only: an alias is moved on the package page or through the API, which record it in
    ML Logs (and skills that follow it update)."""

    list_display = ["name", "package", "version", "updated_by", "updated_at"]
    list_filter = ["package__project"]
    search_fields = ["name", "package__name"]
    list_select_related = ["package", "version", "updated_by"]
