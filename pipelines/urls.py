from django.urls import path

from pipelines import compare_views, list_views, metrics_pages, views

urlpatterns = [
    path("", list_views.pipeline_list, name="pipeline-list"),
    path("new/", views.pipeline_new, name="pipeline-new"),
    path("compare/", compare_views.pipeline_compare, name="pipeline-compare"),
    path(
        "environments/<str:package>/<str:version>/rebuild/",
        views.environment_rebuild_page,
        name="environment-rebuild",
    ),
    path("recurring/", views.schedule_list_page, name="schedule-list"),
    path("recurring/<int:schedule_id>/edit/", views.schedule_edit, name="schedule-edit"),
    path(
        "recurring/<int:schedule_id>/<slug:action>/", views.schedule_action, name="schedule-action"
    ),
    path("<int:run_id>/kill/", views.pipeline_kill_page, name="pipeline-kill"),
    path("<int:run_id>/retry/", views.pipeline_retry_page, name="pipeline-retry"),
    path("<int:run_id>/", views.pipeline_detail, name="pipeline-detail"),
    path("<int:run_id>/edit/", views.pipeline_edit_page, name="pipeline-edit"),
    path("<int:run_id>/log/", views.pipeline_log_tail, name="pipeline-log-tail"),
    path("<int:run_id>/log/download/", views.pipeline_log_download, name="pipeline-log"),
    path("<int:run_id>/results/", views.pipeline_results, name="pipeline-results"),
    path("<int:run_id>/delete/", views.pipeline_delete_page, name="pipeline-delete"),
    path("<int:run_id>/metrics/", metrics_pages.pipeline_metrics_summary, name="pipeline-metrics"),
    path("<int:run_id>/<slug:which>/", views.pipeline_output_browse, name="pipeline-output"),
    path("<int:run_id>/<slug:which>/zip/", views.pipeline_output_zip, name="pipeline-output-zip"),
    path(
        "<int:run_id>/<slug:which>/files/<path:path>",
        views.pipeline_output_file,
        name="pipeline-output-file",
    ),
]
