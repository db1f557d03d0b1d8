import pytest

from aicenter.models import Blob
from datasets.models import Dataset
from tests.conftest import stored_files

URL = "/api/v1/projects/alpha/datasets"


@pytest.fixture
def api(api_as, bob):
    api = api_as(bob)
    assert api.post_json(URL, {"name": "invoices", "description": "2024"}).status_code == 201
    return api


def put(api, path, content: bytes):
    return api.put(f"{URL}/invoices/files/{path}", content, content_type="application/octet-stream")


def test_it_creates_lists_and_gets_a_dataset(api):
    listing = api.get(URL).json()
    assert [d["name"] for d in listing] == ["invoices"]
    assert listing[0]["file_count"] == 0
    put(api, "a.csv", b"x,y\n1,2\n")
    body = api.get(f"{URL}/invoices").json()
    assert body["file_count"] == 1
    assert body["size"] == 8


def test_it_puts_files_in_folders_and_lists_them(api):
    assert put(api, "train/données/résumé.txt", "héllo".encode()).status_code == 201
    assert put(api, "train/日本語.csv", b"1").status_code == 201
    assert put(api, "test/x.csv", b"22").status_code == 201
    files = api.get(f"{URL}/invoices/files").json()["files"]
    assert files == [
        {"path": "test/x.csv", "size": 2},
        {"path": "train/données/résumé.txt", "size": 6},
        {"path": "train/日本語.csv", "size": 1},
    ]
    train = api.get(f"{URL}/invoices/files", {"prefix": "train"}).json()["files"]
    assert [f["path"] for f in train] == ["train/données/résumé.txt", "train/日本語.csv"]


def test_it_downloads_a_file(api):
    put(api, "train/données/résumé.txt", "héllo".encode())
    response = api.get(f"{URL}/invoices/files/train/données/résumé.txt")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == "héllo".encode()


def test_it_replaces_a_file_and_stores_same_content_once(api):
    put(api, "a.txt", b"one")
    put(api, "b.txt", b"one")
    assert Blob.objects.count() == 1
    put(api, "a.txt", b"two")
    assert api.get(f"{URL}/invoices/files/a.txt").getvalue() == b"two"


def test_it_deletes_a_file_and_a_folder(api, django_capture_on_commit_callbacks):
    put(api, "keep.txt", b"k")
    put(api, "train/a.txt", b"a")
    put(api, "train/sub/b.txt", b"b")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{URL}/invoices/files/train").status_code == 204
        assert api.delete(f"{URL}/invoices/files/keep.txt").status_code == 204
    assert api.get(f"{URL}/invoices/files").json()["files"] == []
    assert stored_files() == []


def test_it_deletes_a_dataset(api, django_capture_on_commit_callbacks):
    put(api, "a.txt", b"a")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{URL}/invoices").status_code == 204
    assert not Dataset.objects.exists()
    assert stored_files() == []


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"name": ""}, "name", "A name is required"),
        ({"name": "a/b"}, "name", "not a valid dataset name"),
        ({"name": "../x"}, "name", "not a valid dataset name"),
        ({"name": "invoices"}, "name", "already exists"),
        ({}, "name", "required"),
        ({"name": 5}, "name", "string"),
    ],
)
def test_it_refuses_a_bad_dataset(api, payload, field, message):
    response = api.post_json(URL, payload)
    assert 400 <= response.status_code < 500
    assert message in " ".join(response.json()["errors"][field])
    assert Dataset.objects.count() == 1


def test_it_refuses_broken_json(api):
    response = api.post(URL, "{not json", content_type="application/json")
    assert response.status_code in (400, 422)
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "path, message",
    [
        ("a/%2E%2E/b.txt", "'..'"),
        ("a//b.txt", "empty"),
        ("./b.txt", "'.'"),
    ],
)
def test_it_refuses_bad_paths_and_stores_nothing(api, path, message):
    response = put(api, path, b"x")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert Blob.objects.count() == 0
    assert stored_files() == []


def test_it_refuses_a_file_where_a_folder_is_and_the_reverse(api):
    put(api, "train/a.txt", b"a")
    response = put(api, "train", b"x")
    assert response.status_code == 400
    assert "is a folder" in response.json()["detail"]
    response = put(api, "train/a.txt/b.txt", b"x")
    assert response.status_code == 400
    assert "is a file" in response.json()["detail"]


def test_missing_things_are_404_json(api):
    assert api.get(f"{URL}/nope").status_code == 404
    response = api.get(f"{URL}/invoices/files/nope.txt")
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no file 'nope.txt'."}
    response = api.delete(f"{URL}/invoices/files/nope.txt")
    assert response.status_code == 400
    assert "There is no file or folder 'nope.txt'" in response.json()["detail"]


def test_the_schema_and_docs_are_served(api):
    schema = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/projects/{project}/datasets/{dataset}/files/{path}" in schema["paths"]
    assert api.get("/api/v1/docs").status_code == 200
