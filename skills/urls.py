from django.urls import path

from skills import views

urlpatterns = [
    path("", views.skill_list_page, name="skill-list"),
    path("new/", views.skill_new, name="skill-new"),
    path("<str:name>/", views.skill_detail, name="skill-detail"),
    path("<str:name>/try/", views.skill_try, name="skill-try"),
    path("<str:name>/change/", views.skill_change, name="skill-change"),
    path("<str:name>/delete/", views.skill_delete_page, name="skill-delete"),
    path("<str:name>/<slug:action>/", views.skill_action, name="skill-action"),
]
