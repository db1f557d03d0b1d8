from django.urls import path

from webhooks import views

urlpatterns = [
    path("", views.account_notifications, name="account-notifications"),
]
