from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from aicenter import views
from aicenter.api import api

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", views.project_list, name="project-list"),
    path("p/<slug:project>/", views.project_home, name="project-home"),
    path("p/<slug:project>/members/", views.project_members, name="project-members"),
    path("p/<slug:project>/settings/", views.project_settings, name="project-settings"),
    path("p/<slug:project>/datasets/", include("datasets.urls")),
    path("p/<slug:project>/packages/", include("packages.urls")),
    path("p/<slug:project>/pipelines/", include("pipelines.urls")),
    path("p/<slug:project>/skills/", include("skills.urls")),
    path("p/<slug:project>/logs/", include("governance.urls")),
    path("p/<slug:project>/webhooks/", include("webhooks.urls")),
    path("account/notifications/", include("webhooks.urls_account")),
    path("account/", include("accounts.urls")),
]
handler500 = "aicenter.outages.server_error"
