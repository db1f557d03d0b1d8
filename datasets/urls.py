from django.urls import path

from datasets import views

urlpatterns = [
    path("", views.dataset_list_page, name="dataset-list"),
    path("<str:dataset>/", views.dataset_browse, name="dataset-browse"),
    path("<str:dataset>/upload/", views.dataset_upload, name="dataset-upload"),
    path("<str:dataset>/upload-zip/", views.dataset_upload_zip, name="dataset-upload-zip"),
    path("<str:dataset>/folders/", views.dataset_new_folder, name="dataset-new-folder"),
    path("<str:dataset>/delete-path/", views.dataset_delete_path, name="dataset-delete-path"),
    path("<str:dataset>/delete/", views.dataset_delete_page, name="dataset-delete"),
    path("<str:dataset>/files/<path:path>", views.dataset_download, name="dataset-download"),
]
