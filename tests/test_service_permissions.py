"""Every write service checks the role of the user it is given, whoever calls it: vera
(viewer) and charlie (in no project) are refused by the services themselves, through the API
(403, or 404 for charlie, who must not learn the project exists) and through the pages, and
nothing changes. alice is Project admin of Alpha, bob its Data scientist."""

import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from core.members import membership_remove, membership_set
from core.models import Blob, ManifestEntry, Membership, Project
from core.services import project_get_for_user, project_settings_update
from datasets.models import Dataset
from datasets.selectors import dataset_get
from datasets.services import (
    dataset_create,
    dataset_delete,
    dataset_file_put,
    dataset_files_upload,
    dataset_folder_create,
    dataset_path_delete,
    dataset_zip_upload,
)
from packages.models import Package, PackageVersion
from packages.selectors import package_get
from packages.services import (
    package_create,
    package_delete,
    package_version_delete,
    package_version_upload,
)
from tests.conftest import stored_files, upload
from tests.factories import make_zip

API = "/api/v1/projects/alpha"


@pytest.fixture
def alpha(project, alice, bob, vera, charlie):
    """Alpha holding the package `classifier` 1.0 and the dataset `invoices` (a.csv, and
    train/b.csv), made by alice."""
    package_create(project=project, user=alice, name="classifier", file=upload())
    dataset = dataset_create(project=project, user=alice, name="invoices")
    for path in ("a.csv", "train/b.csv"):
        dataset_file_put(user=alice, dataset=dataset, path=path, fileobj=io.BytesIO(b"1,2\n"))
    return Project.objects.get(pk=project.pk)  # fresh: no role cached for anyone


def everything():
    """What the writes below could change, to compare before and after."""
    return {
        "project": list(Project.objects.values_list("slug", "allow_network")),
        "members": sorted(Membership.objects.values_list("user__username", "role")),
        "packages": list(Package.objects.values_list("name", "description")),
        "versions": sorted(
            PackageVersion.with_deleted.values_list("major", "minor", "deleted_at", "manifest")
        ),
        "datasets": list(Dataset.objects.values_list("name", "manifest")),
        "entries": sorted(ManifestEntry.objects.values_list("manifest", "path", "blob")),
        "blobs": Blob.objects.count(),
        "stored": stored_files(),
    }


def _package(project):
    return Package.objects.get(project=project, name="classifier")


def _dataset(project):
    return Dataset.objects.get(project=project, name="invoices")


# Each write with arguments it accepts from a user with the role it needs (checked by
# test_each_write_is_done_for_the_role_it_needs), so the role is the only reason to refuse.
RUN_WRITES = {
    "package_create": lambda user, project: package_create(
        project=project, user=user, name="other", file=upload()
    ),
    "package_version_upload": lambda user, project: package_version_upload(
        user=user, package=_package(project), file=upload()
    ),
    "package_version_delete": lambda user, project: package_version_delete(
        user=user, version=_package(project).versions.get()
    ),
    "package_delete": lambda user, project: package_delete(user=user, package=_package(project)),
    "dataset_create": lambda user, project: dataset_create(
        project=project, user=user, name="other"
    ),
    "dataset_files_upload": lambda user, project: dataset_files_upload(
        user=user, dataset=_dataset(project), files=[("new.csv", io.BytesIO(b"3"))]
    ),
    "dataset_zip_upload": lambda user, project: dataset_zip_upload(
        user=user,
        dataset=_dataset(project),
        file=SimpleUploadedFile("d.zip", make_zip({"z.csv": "4"})),
    ),
    "dataset_file_put": lambda user, project: dataset_file_put(
        user=user, dataset=_dataset(project), path="a.csv", fileobj=io.BytesIO(b"replaced")
    ),
    "dataset_folder_create": lambda user, project: dataset_folder_create(
        user=user, dataset=_dataset(project), folder="", name="empty"
    ),
    "dataset_path_delete": lambda user, project: dataset_path_delete(
        user=user, dataset=_dataset(project), path="train"
    ),
    "dataset_delete": lambda user, project: dataset_delete(user=user, dataset=_dataset(project)),
}
ADMIN_WRITES = {
    "project_settings_update": lambda user, project: project_settings_update(
        user=user, project=project, allow_network=True
    ),
    "membership_set": lambda user, project: membership_set(
        user=user, project=project, username="vera", role=Membership.ADMIN
    ),
    "membership_remove": lambda user, project: membership_remove(
        user=user, project=project, username="bob"
    ),
}
WRITES = {**RUN_WRITES, **ADMIN_WRITES}


def refused(write, user, project) -> str:
    before = everything()
    with pytest.raises(PermissionDenied) as refusal:
        write(user, project)
    assert everything() == before
    return str(refusal.value)


@pytest.mark.parametrize("name", WRITES)
def test_a_viewer_is_refused_each_write_and_nothing_changes(alpha, vera, name):
    message = refused(WRITES[name], vera, alpha)
    assert "you are a Viewer" in message
    assert "Data scientist" in message or "Project admin" in message


@pytest.mark.parametrize("name", WRITES)
def test_an_outsider_is_refused_each_write_and_nothing_changes(alpha, charlie, name):
    assert refused(WRITES[name], charlie, alpha) == "You are not a member of project 'Alpha'."


@pytest.mark.parametrize("name", ADMIN_WRITES)
def test_a_data_scientist_is_refused_what_only_project_admins_do(alpha, bob, name):
    assert "the Project admin role" in refused(ADMIN_WRITES[name], bob, alpha)


@pytest.mark.parametrize("name", WRITES)
def test_each_write_is_done_for_the_role_it_needs(alpha, alice, bob, name):
    before = everything()
    WRITES[name](bob if name in RUN_WRITES else alice, alpha)
    assert everything() != before


@pytest.mark.parametrize("name", WRITES)
def test_the_role_found_for_one_user_is_not_lent_to_another(alpha, alice, vera, name):
    """project_get_for_user keeps alice's role on the project it returns; handing that
    project to a service with vera as the user must not make her an admin."""
    project = project_get_for_user(user=alice, slug="alpha")
    refused(WRITES[name], vera, project)


def test_a_superuser_may_do_anything(alpha, django_user_model):
    root = django_user_model.objects.create_superuser("root", "", "pw")
    project_settings_update(user=root, project=alpha, allow_network=True)
    dataset_delete(user=root, dataset=_dataset(alpha))
    assert not Dataset.objects.exists()


def test_the_role_of_a_project_got_for_the_user_costs_no_query(
    alpha, bob, django_assert_num_queries
):
    """The selectors hand the services the project project_get_for_user returned, with the
    role it found: the check itself asks the database nothing."""
    project = project_get_for_user(user=bob, slug="alpha")
    dataset = dataset_get(project=project, name="invoices")
    package = package_get(project=project, name="classifier")
    # each refused after the check, for what it was given, before any write
    with django_assert_num_queries(0):
        with pytest.raises(ValidationError, match="Give the new folder a name"):
            dataset_folder_create(user=bob, dataset=dataset, folder="", name="")
    with django_assert_num_queries(1):  # the refused upload's ML Logs event, nothing else
        with pytest.raises(ValidationError, match="Choose a zip file"):
            package_version_upload(user=bob, package=package, file=None)


# The same attack through the API and the pages: every write path of these apps.
API_WRITES = [
    ("patch", "", {"allow_network": True}),
    ("put", "/members/charlie", {"role": "admin"}),
    ("delete", "/members/bob", None),
    ("post", "/packages", {"name": "other", "file": "zip"}),
    ("post", "/packages/classifier/versions", {"file": "zip"}),
    ("delete", "/packages/classifier/versions/1.0", None),
    ("delete", "/packages/classifier", None),
    ("post", "/datasets", {"name": "other"}),
    ("delete", "/datasets/invoices", None),
    ("post", "/datasets/invoices/folders", {"name": "empty"}),
    ("post", "/datasets/invoices/zip", {"zip": "zip"}),
    ("put", "/datasets/invoices/files/a.csv", b"replaced"),
    ("delete", "/datasets/invoices/files/a.csv", None),
]


def _send(client, method, path, data):
    if isinstance(data, bytes):
        return client.put(API + path, data, content_type="application/octet-stream")
    if data is None:
        return getattr(client, method)(API + path)
    if "file" in data or "zip" in data:  # multipart
        files = {key: upload() if value == "zip" else value for key, value in data.items()}
        return client.post(API + path, files)
    return getattr(client, method)(API + path, data, content_type="application/json")


@pytest.mark.parametrize(
    "method, path, data", API_WRITES, ids=[f"{m} {p}" for m, p, _ in API_WRITES]
)
def test_the_api_refuses_a_viewer_each_write_and_an_outsider_sees_nothing(
    alpha, api_as, alice, bob, vera, charlie, method, path, data
):
    before = everything()
    response = _send(api_as(vera), method, path, data)
    assert response.status_code == 403, response.content
    assert "you are a Viewer" in response.json()["detail"]
    response = _send(api_as(charlie), method, path, data)
    assert response.status_code == 404, response.content
    assert everything() == before
    # and the same request is a good one for the role it needs
    writer = alice if path in ("", "/members/charlie", "/members/bob") else bob
    assert _send(api_as(writer), method, path, data).status_code < 300


PAGE_WRITES = [
    ("/settings/", {"allow_network": "on"}),
    ("/members/", {"username": "charlie", "role": "admin"}),
    ("/members/", {"remove": "bob"}),
    ("/packages/new/", {"name": "other", "file": "zip"}),
    ("/packages/classifier/upload/", {"file": "zip"}),
    ("/packages/classifier/1.0/delete/", {}),
    ("/packages/classifier/delete/", {}),
    ("/datasets/", {"name": "other"}),
    ("/datasets/invoices/upload/", {"files": "csv"}),
    ("/datasets/invoices/upload-zip/", {"zip": "zip"}),
    ("/datasets/invoices/folders/", {"name": "empty"}),
    ("/datasets/invoices/delete-path/", {"path": "train"}),
    ("/datasets/invoices/delete/", {}),
]


@pytest.mark.parametrize(
    "path, data", PAGE_WRITES, ids=[f"{p} {sorted(d)}" for p, d in PAGE_WRITES]
)
def test_the_pages_refuse_a_viewer_each_write(alpha, pages_as, vera, path, data):
    before = everything()
    files = {"zip": lambda: upload(), "csv": lambda: SimpleUploadedFile("n.csv", b"3")}
    data = {key: files[value]() if value in files else value for key, value in data.items()}
    response = pages_as(vera).post("/p/alpha" + path, data)
    assert response.status_code == 403
    assert "you are a Viewer. Ask one of its Project admins" in response.content.decode()
    assert everything() == before
