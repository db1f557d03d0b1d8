import shutil

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from aicenter.models import Membership, Project
from aicenter.services import api_token_create
from tests.factories import package_zip


@pytest.fixture(autouse=True)
def _clean_storage(settings):
    """Each test starts with empty local storage, so 'nothing stored' can be checked."""
    yield
    shutil.rmtree(settings.DATA_DIR / "storage", ignore_errors=True)


@pytest.fixture
def project(db):
    return Project.objects.create(slug="alpha", name="Alpha")


def _user(django_user_model, username, project=None, role=None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if project and role:
        Membership.objects.create(project=project, user=user, role=role)
    return user


@pytest.fixture
def alice(django_user_model, project):
    """Project admin of Alpha."""
    return _user(django_user_model, "alice", project, Membership.ADMIN)


@pytest.fixture
def bob(django_user_model, project):
    """Data scientist in Alpha."""
    return _user(django_user_model, "bob", project, Membership.DATA_SCIENTIST)


@pytest.fixture
def vera(django_user_model, project):
    """Viewer in Alpha: reads only."""
    return _user(django_user_model, "vera", project, Membership.VIEWER)


@pytest.fixture
def charlie(django_user_model, db):
    """In no project: must see nothing of Alpha."""
    return _user(django_user_model, "charlie")


class ApiClient(Client):
    """The test client, authenticated with a real API token and speaking JSON."""

    def __init__(self, user):
        super().__init__(headers={"Authorization": f"Bearer {api_token_create(user=user)}"})

    def post_json(self, path, data):
        return self.post(path, data, content_type="application/json")


@pytest.fixture
def api_as():
    return ApiClient


@pytest.fixture
def pages_as(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def upload(name="package.zip", content=None, **overrides):
    return SimpleUploadedFile(name, content if content is not None else package_zip(**overrides))


def stored_files():
    """Every file under local storage (blobs included)."""
    root = settings.DATA_DIR / "storage"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
