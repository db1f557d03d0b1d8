"""ML Logs of datasets: created, files uploaded (count and bytes: files, a zip, the API's PUT,
a new folder), files deleted, deleted; by the page's user or the token's user; a refused or
rolled-back change leaves no event."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from core.models import Event
from datasets.services import dataset_create, dataset_file_put
from tests.factories import make_zip

pytestmark = pytest.mark.django_db
API = "/api/v1/projects/alpha"


def logged(**filters):
    """The dataset events, oldest first, as (action, actor, key, data)."""
    events = Event.objects.filter(category="dataset", **filters).order_by("id")
    return [(e.action, e.actor_name, e.object_key, e.data) for e in events]


def test_the_pages_log_each_change_as_their_user(pages_as, bob):
    pages = pages_as(bob)
    pages.post("/p/alpha/datasets/", {"name": "invoices", "description": "Q1 scans"})
    files = [SimpleUploadedFile("a.csv", b"1,2\n"), SimpleUploadedFile("b.csv", b"3,4,5\n")]
    pages.post("/p/alpha/datasets/invoices/upload/", {"files": files, "folder": "train"})
    zipped = SimpleUploadedFile("more.zip", make_zip({"c.csv": "x" * 1000, "d/e.csv": "y"}))
    pages.post("/p/alpha/datasets/invoices/upload-zip/", {"zip": zipped})
    pages.post("/p/alpha/datasets/invoices/folders/", {"name": "empty"})
    pages.post("/p/alpha/datasets/invoices/delete-path/", {"path": "train"})
    pages.post("/p/alpha/datasets/invoices/delete/")

    assert logged() == [
        ("created", "bob", "invoices", {}),
        ("files_uploaded", "bob", "invoices", {"count": 2, "bytes": 10}),
        ("files_uploaded", "bob", "invoices", {"count": 2, "bytes": 1001}),
        ("files_uploaded", "bob", "invoices", {"count": 0, "bytes": 0, "folder": "empty"}),
        ("files_deleted", "bob", "invoices", {"path": "train"}),
        ("deleted", "bob", "invoices", {}),
    ]
    messages = list(Event.objects.order_by("id").values_list("message", flat=True))
    assert messages[1:5] == [
        "2 files, 10 bytes in train",
        "2 files, 1001 bytes",
        "Folder empty created",
        "train deleted",
    ]
    urls = list(Event.objects.order_by("id").values_list("url", flat=True))
    assert urls == ["/p/alpha/datasets/invoices/"] * 5 + [""]


def test_the_api_logs_as_the_tokens_user(api_as, bob):
    api = api_as(bob)
    assert api.post_json(f"{API}/datasets", {"name": "invoices"}).status_code == 201
    put = api.put(f"{API}/datasets/invoices/files/a.csv", b"12345", content_type="text/csv")
    assert put.status_code == 201
    assert api.delete(f"{API}/datasets/invoices/files/a.csv").status_code == 204

    assert logged() == [
        ("created", "bob", "invoices", {}),
        ("files_uploaded", "bob", "invoices", {"count": 1, "bytes": 5}),
        ("files_deleted", "bob", "invoices", {"path": "a.csv"}),
    ]
    assert all(e.actor == bob for e in Event.objects.all())


def test_refused_changes_leave_no_event(api_as, bob):
    api = api_as(bob)
    api.post_json(f"{API}/datasets", {"name": "invoices"})
    before = Event.objects.count()

    assert api.post_json(f"{API}/datasets", {"name": "invoices"}).status_code == 409
    assert api.delete(f"{API}/datasets/invoices/files/nothing.csv").status_code == 404
    unsafe = api.put(f"{API}/datasets/invoices/files/../x", b"1", content_type="text/csv")
    assert unsafe.status_code in (400, 404)

    assert Event.objects.count() == before


def test_a_rolled_back_upload_leaves_no_event(project, bob):
    dataset = dataset_create(project=project, user=bob, name="invoices")

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), transaction.atomic():
        dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
        raise Interrupted

    assert [action for action, *_ in logged()] == ["created"]
    assert not dataset.manifest.entries.exists()


def test_a_viewer_changes_nothing_and_logs_nothing(api_as, bob, vera, project):
    dataset_create(project=project, user=bob, name="invoices")
    api = api_as(vera)
    put = api.put(f"{API}/datasets/invoices/files/a.csv", b"1", content_type="text/csv")
    assert put.status_code == 403
    assert api.delete(f"{API}/datasets/invoices").status_code == 403
    assert [action for action, *_ in logged()] == ["created"]
