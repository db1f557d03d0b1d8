from django.urls import path

from packages import views

urlpatterns = [
    path("", views.package_list_page, name="package-list"),
    path("new/", views.package_new, name="package-new"),
    path("<str:package>/", views.package_detail, name="package-detail"),
    path("<str:package>/upload/", views.package_upload, name="package-upload"),
    path("<str:package>/delete/", views.package_delete_page, name="package-delete"),
    path("<str:package>/aliases/", views.package_alias_set, name="package-alias-set"),
    path(
        "<str:package>/aliases/<str:alias>/remove/",
        views.package_alias_remove,
        name="package-alias-remove",
    ),
    path("<str:package>/<str:version>/", views.version_detail, name="version-detail"),
    path("<str:package>/<str:version>/download/", views.version_download, name="version-download"),
    path("<str:package>/<str:version>/delete/", views.version_delete_page, name="version-delete"),
    path(
        "<str:package>/<str:version>/files/<path:path>",
        views.version_file_download,
        name="version-file",
    ),
]
