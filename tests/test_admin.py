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
        if m._meta.app_label in ("aicenter", "packages", "datasets", "pipelines", "skills")
    ]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert missing == []


def test_the_admin_pages_answer(root):
    from django.urls import reverse

    for model in admin.site._registry:
        if model._meta.app_label not in ("aicenter", "packages", "datasets", "pipelines", "skills"):
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert root.get(url).status_code == 200, url
    index = root.get("/admin/").content.decode()
    assert "Django-RQ" in index  # django-rq lists its dashboard in the admin itself
    assert root.get("/admin/rq/").status_code == 200


def test_rows_only_the_product_writes_are_read_only(root):
    from django.urls import reverse

    for name in ("pipelines_pipelinerun", "packages_packageversion", "pipelines_logchunk"):
        assert root.get(reverse(f"admin:{name}_add")).status_code == 403, name
        page = root.get(reverse(f"admin:{name}_changelist")).content.decode()
        # no "Add pipeline run" that nothing would execute
        assert reverse(f"admin:{name}_add") not in page, name


def test_users_are_created_deactivated_and_given_a_password_here(root, django_user_model):
    from django.urls import reverse

    response = root.post(
        reverse("admin:auth_user_add"),
        {"username": "dora", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    dora = django_user_model.objects.get(username="dora")
    assert dora.check_password("a-long-pass-phrase")
    response = root.post(
        reverse("admin:auth_user_password_change", args=[dora.pk]),
        {"password1": "another-pass-phrase", "password2": "another-pass-phrase"},
    )
    assert response.status_code == 302
    dora.refresh_from_db()
    assert dora.check_password("another-pass-phrase")
    page = root.get(reverse("admin:auth_user_change", args=[dora.pk])).content.decode()
    assert 'name="is_active"' in page  # deactivated with one checkbox
