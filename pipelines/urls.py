from django.urls import path

from pipelines import views

urlpatterns = [
    path("", views.pipeline_list, name="pipeline-list"),
]
