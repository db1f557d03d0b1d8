"""The admin console: every model listed and its pages answering, with django-rq's pages."""

import pytest
from django.apps import apps
from django.contrib import admin


@pytest.fixture
def root(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", "", "pw"))
    return client


def test_every_model_of_ours_is_in_the_admin():
    ours = [
        m
        for m in apps.get_models()
        if m._meta.app_label in ("aicenter", "packages", "datasets", "pipelines")
    ]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert missing == []


def test_the_admin_pages_answer(root):
    from django.urls import reverse

    for model in admin.site._registry:
        if model._meta.app_label not in ("aicenter", "packages", "datasets", "pipelines"):
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert root.get(url).status_code == 200, url
    index = root.get("/admin/").content.decode()
    assert "Django-RQ" in index  # django-rq lists its dashboard in the admin itself
    assert root.get("/admin/rq/").status_code == 200
