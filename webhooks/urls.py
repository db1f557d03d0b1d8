from django.urls import path

from webhooks import views

urlpatterns = [
    path("", views.webhook_list_page, name="webhook-list"),
    path("new/", views.webhook_new, name="webhook-new"),
    path("<int:webhook_id>/", views.webhook_detail, name="webhook-detail"),
    path("<int:webhook_id>/edit/", views.webhook_edit, name="webhook-edit"),
    path("<int:webhook_id>/test/", views.webhook_test, name="webhook-test"),
    path("<int:webhook_id>/delete/", views.webhook_delete_page, name="webhook-delete"),
]
