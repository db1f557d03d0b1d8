import base64
import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import Blob
from datasets.models import Dataset
from tests.conftest import stored_files
from tests.factories import make_zip

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
        ({}, "name", "required"),
        ({"name": 5}, "name", "string"),
        ({"name": "x" * 101}, "name", "100 at most"),
        ({"name": "  " + "x" * 99}, "name", "100 at most"),
        ({"name": "x", "description": 5}, "description", "string"),
    ],
)
def test_it_refuses_a_bad_dataset(api, payload, field, message):
    response = api.post_json(URL, payload)
    assert 400 <= response.status_code < 500
    assert message in " ".join(response.json()["errors"][field])
    assert Dataset.objects.count() == 1


def test_it_answers_409_for_a_taken_name(api):
    response = api.post_json(URL, {"name": "invoices"})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "name: A dataset named 'invoices' already exists.",
        "errors": {"name": ["A dataset named 'invoices' already exists."]},
    }
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
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no file or folder 'nope.txt'."}


def test_the_schema_and_docs_are_served(api):
    schema = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/projects/{project}/datasets/{dataset}/files/{path}" in schema["paths"]
    assert api.get("/api/v1/docs").status_code == 200


# An upload that did not arrive whole stores nothing and leaves the old file as it was.

GOOD = b"good," * 400


def put_raw(api, path, body: bytes, **headers):
    """A PUT whose body is exactly `body`, whatever Content-Length says (as when the client's
    connection drops midway); `headers` are WSGI keys, e.g. CONTENT_LENGTH."""
    return api.put(
        f"{URL}/invoices/files/{path}",
        body,
        content_type="application/octet-stream",
        **{"wsgi.input": io.BytesIO(body), **headers},
    )


def assert_old_file_intact(api, before):
    assert stored_files() == before
    assert Blob.objects.count() == 1
    assert api.get(f"{URL}/invoices/files/a.txt").getvalue() == GOOD


def test_it_refuses_a_body_shorter_than_its_content_length(api):
    assert put(api, "a.txt", GOOD).status_code == 201
    before = stored_files()
    response = put_raw(api, "a.txt", GOOD[:1000], CONTENT_LENGTH=str(len(GOOD)))
    assert response.status_code == 400, response.content
    assert response.json() == {
        "detail": "Content-Length: The upload was cut short: 1,000 of the 2,000 bytes announced "
        "by Content-Length arrived. Nothing was stored; send the file again.",
        "errors": {
            "Content-Length": [
                "The upload was cut short: 1,000 of the 2,000 bytes announced by Content-Length "
                "arrived. Nothing was stored; send the file again."
            ]
        },
    }
    assert_old_file_intact(api, before)


@pytest.mark.parametrize(
    "header, value",
    [
        ("HTTP_X_CHECKSUM_SHA256", hashlib.sha256(GOOD).hexdigest()),
        ("HTTP_X_CHECKSUM_SHA256", base64.b64encode(hashlib.sha256(GOOD).digest()).decode()),
        ("HTTP_CONTENT_MD5", base64.b64encode(hashlib.md5(GOOD).digest()).decode()),
    ],
)
def test_it_refuses_a_body_that_does_not_match_its_checksum(api, header, value):
    assert put(api, "a.txt", GOOD).status_code == 201
    before = stored_files()
    corrupt = GOOD[:100] + b"X" + GOOD[101:]
    response = put_raw(api, "a.txt", corrupt, **{header: value})
    assert response.status_code == 400, response.content
    name = "x-checksum-sha256" if "SHA256" in header else "Content-MD5"
    (message,) = response.json()["errors"][name]
    assert message.startswith("The file arrived corrupted: its ")
    assert message.endswith(f"not the {value} sent in {name}. Nothing was stored; send it again.")
    assert_old_file_intact(api, before)


def test_it_stores_a_body_that_matches_its_checksums(api):
    assert put(api, "a.txt", GOOD).status_code == 201
    new = b"new," * 300
    response = put_raw(
        api,
        "a.txt",
        new,
        CONTENT_LENGTH=str(len(new)),
        HTTP_X_CHECKSUM_SHA256=hashlib.sha256(new).hexdigest(),
        HTTP_CONTENT_MD5=base64.b64encode(hashlib.md5(new).digest()).decode(),
    )
    assert response.status_code == 201, response.content
    assert response.json() == {"path": "a.txt", "size": len(new)}
    assert api.get(f"{URL}/invoices/files/a.txt").getvalue() == new


@pytest.mark.parametrize(
    "header, value, name",
    [
        ("HTTP_X_CHECKSUM_SHA256", "abc", "x-checksum-sha256"),
        ("HTTP_CONTENT_MD5", "not base64!", "Content-MD5"),
    ],
)
def test_it_refuses_a_checksum_it_cannot_read(api, header, value, name):
    response = put_raw(api, "a.txt", GOOD, **{header: value})
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [name]
    assert stored_files() == []


def test_it_refuses_a_chunked_body_it_would_read_as_empty(api):
    response = api.put(
        f"{URL}/invoices/files/a.txt",
        content_type="application/octet-stream",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 400, response.content
    assert "Content-Length" in response.json()["errors"]
    assert stored_files() == []


# What the dataset page offers besides single files: a zip unpacked, a new folder.


def test_it_unpacks_a_zip_into_a_folder(api):
    content = make_zip({"x/1.txt": "1", "x/2.txt": "22", "__MACOSX/._junk": "j"})
    response = api.post(
        f"{URL}/invoices/zip", {"zip": SimpleUploadedFile("d.zip", content), "folder": "raw"}
    )
    assert response.status_code == 201, response.content
    assert response.json() == {"files": 2}
    files = api.get(f"{URL}/invoices/files").json()["files"]
    assert files == [{"path": "raw/x/1.txt", "size": 1}, {"path": "raw/x/2.txt", "size": 2}]


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "Choose a zip file."),
        ({"zip": SimpleUploadedFile("d.zip", b"not a zip")}, "not a zip archive"),
        ({"zip": SimpleUploadedFile("d.zip", make_zip({"../x": "1"}))}, "points outside"),
        (
            {"zip": SimpleUploadedFile("d.zip", make_zip({"a": "1", "a/b.txt": "2"}))},
            "'a' is both a file and a folder.",
        ),
    ],
)
def test_it_refuses_a_bad_zip_and_stores_nothing(api, data, message):
    response = api.post(f"{URL}/invoices/zip", data)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"]["zip"])
    assert api.get(f"{URL}/invoices/files").json()["files"] == []
    assert Blob.objects.count() == 0
    assert stored_files() == []


def test_it_creates_an_empty_folder(api):
    response = api.post_json(f"{URL}/invoices/folders", {"name": "train"})
    assert response.status_code == 201, response.content
    assert response.json() == {"path": "train"}
    response = api.post_json(f"{URL}/invoices/folders", {"folder": "train", "name": "données"})
    assert response.json() == {"path": "train/données"}
    dataset = Dataset.objects.get()
    assert sorted(dataset.manifest.entries.values_list("path", flat=True)) == [
        "train/",
        "train/données/",
    ]
    assert api.delete(f"{URL}/invoices/files/train/données").status_code == 204


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"name": ""}, "name", "Give the new folder a name"),
        ({"name": "a/b"}, "name", "'/'"),
        ({"name": ".."}, "name", "'..'"),
        ({"name": "x", "folder": "../up"}, "folder", "'..'"),
    ],
)
def test_it_refuses_a_bad_folder_and_stores_nothing(api, payload, field, message):
    response = api.post_json(f"{URL}/invoices/folders", payload)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert not Dataset.objects.get().manifest.entries.exists()


def test_viewers_and_outsiders_neither_unpack_nor_make_folders(api, api_as, vera, charlie):
    zip_upload = {"zip": SimpleUploadedFile("d.zip", make_zip({"a.txt": "1"}))}
    for who, status in ((vera, 403), (charlie, 404)):
        client = api_as(who)
        assert client.post(f"{URL}/invoices/zip", dict(zip_upload)).status_code == status
        response = client.post_json(f"{URL}/invoices/folders", {"name": "x"})
        assert response.status_code == status
    assert not Dataset.objects.get().manifest.entries.exists()
    assert stored_files() == []


def test_the_schema_documents_every_error_status_with_the_error_body(api):
    schema = api.get("/api/v1/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"401"} | ({"404"} if "{project}" in path else set())
            if method != "get":
                expected |= {"400", "403", "503"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == error
    creates = ("/api/v1/projects", "/api/v1/projects/{project}/datasets")
    for path in (*creates, "/api/v1/projects/{project}/packages"):
        assert "409" in schema["paths"][path]["post"]["responses"]
