from django.urls import path

from governance import views

urlpatterns = [
    path("", views.project_logs, name="project-logs"),
    path("export.csv", views.project_logs_export, name="project-logs-export"),
]
