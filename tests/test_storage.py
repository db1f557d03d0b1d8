"""The storage layer on both backends: local files, and S3 through django-storages against
moto's S3-compatible server. The same tests run on each, so nothing may assume a local path."""

import io
import zipfile
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

from core.blobs import blob_collect_garbage, blob_open, blob_store
from core.manifests import (
    FolderRows,
    manifest_copy,
    manifest_create,
    manifest_delete,
    manifest_delete_path,
    manifest_files,
    manifest_from_files,
    manifest_put_file,
    manifest_put_folder,
    manifest_write_zip,
)
from core.models import Blob, Manifest, ManifestEntry
from tests.conftest import BUCKET, stored_files, upload, use_s3_storage
from tests.factories import package_files, package_zip


class Backend:
    """What a storage holds, read behind the app's back: the files on disk, or the objects in
    the bucket through boto3."""

    def __init__(self, name, client=None):
        self.name = name
        self.client = client

    def keys(self) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def objects(self) -> dict[str, bytes]:
        """Every stored object, name → bytes."""
        if self.name == "local":
            root = settings.DATA_DIR / "storage"
            return {p.relative_to(root).as_posix(): p.read_bytes() for p in stored_files()}
        return {
            key: self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            for key in self.keys()
        }


@pytest.fixture(params=["local", "s3"])
def backend(request, settings):
    if request.param == "local":
        yield Backend("local")
        return
    endpoint, client = request.getfixturevalue("s3_server")
    use_s3_storage(settings, endpoint)
    assert default_storage.bucket_name == BUCKET  # the override reached the lazy storage
    backend = Backend("s3", client)
    for key in backend.keys():  # what other tests on the session's S3 left there
        client.delete_object(Bucket=BUCKET, Key=key)
    yield backend
    # Nothing went to local disk on the way: the code never needed a local path.
    assert stored_files() == []
    for key in backend.keys():
        client.delete_object(Bucket=BUCKET, Key=key)


def blob_names():
    return {blob.storage_name for blob in Blob.objects.all()}


# blobs


def test_it_stores_the_same_bytes_once(db, backend):
    first = blob_store(io.BytesIO(b"same bytes"))
    second = blob_store(io.BytesIO(b"same bytes"))
    assert first.pk == second.pk
    assert first.size == 10
    assert Blob.objects.count() == 1
    assert backend.objects() == {first.storage_name: b"same bytes"}
    with blob_open(first) as f:
        assert f.read() == b"same bytes"


def test_it_stores_an_empty_file_and_a_large_one(db, backend):
    large = bytes(range(256)) * 40_000  # 10 MB: spooled to disk, multipart on S3
    empty = blob_store(io.BytesIO(b""))
    big = blob_store(io.BytesIO(large))
    assert (empty.size, big.size) == (0, len(large))
    assert backend.objects() == {empty.storage_name: b"", big.storage_name: large}


# manifests


def manifest_listing(manifest, folder=""):
    """One folder as the file browsers list it (FolderRows), all its rows at once."""
    rows = FolderRows(manifest, folder)
    listed = rows[0 : rows.count()]
    return SimpleNamespace(
        folders=[row for kind, row in listed if kind == "folder"],
        files=[row for kind, row in listed if kind == "file"],
        file_count=rows.totals.file_count,
        size=rows.totals.size,
        is_empty=rows.totals.is_empty,
    )


def test_it_lists_folders_with_counts_and_sizes_under_utf8_names(db, backend):
    manifest = manifest_create()
    manifest_put_file(manifest, "données/résumé.txt", io.BytesIO("été".encode()))
    manifest_put_file(manifest, "données/sub/a.bin", io.BytesIO(b"12345"))
    manifest_put_file(manifest, "日本語/ファイル.csv", io.BytesIO("列\n1\n".encode()))
    manifest_put_file(manifest, "top.txt", io.BytesIO(b"x"))

    root = manifest_listing(manifest)
    assert [(f.name, f.path, f.file_count, f.size) for f in root.folders] == [
        ("données", "données", 2, 10),
        ("日本語", "日本語", 1, 6),
    ]
    assert [e.path for e in root.files] == ["top.txt"]
    assert (root.file_count, root.size) == (4, 17)

    folder = manifest_listing(manifest, "données")
    assert [(f.name, f.path, f.file_count) for f in folder.folders] == [("sub", "données/sub", 1)]
    assert [(e.name, e.size) for e in folder.files] == [("résumé.txt", 5)]
    assert (folder.file_count, folder.size) == (2, 10)

    assert sorted(backend.objects().values()) == sorted(
        [b"x", b"12345", "été".encode(), "列\n1\n".encode()]
    )
    entry = manifest.entries.get(path="日本語/ファイル.csv")
    with blob_open(entry.blob) as f:
        assert f.read().decode() == "列\n1\n"


def test_it_replaces_a_file_in_place(db, backend):
    manifest = manifest_create()
    manifest_put_file(manifest, "a.txt", io.BytesIO(b"old"))
    manifest_put_file(manifest, "a.txt", io.BytesIO(b"new!"))
    assert manifest_files(manifest) == [("a.txt", 4)]


def test_it_lists_an_empty_folder_as_empty(db):
    manifest = manifest_create()
    manifest_put_folder(manifest, "empty")
    assert [f.name for f in manifest_listing(manifest).folders] == ["empty"]
    listing = manifest_listing(manifest, "empty")
    assert listing.files == []
    assert listing.is_empty


def test_it_keeps_folders_that_differ_only_in_case_apart(db):
    manifest = manifest_create()
    manifest_put_file(manifest, "Data/upper.txt", io.BytesIO(b"U"))
    manifest_put_file(manifest, "data/lower.txt", io.BytesIO(b"l"))

    assert [e.path for e in manifest_listing(manifest, "data").files] == ["data/lower.txt"]
    assert manifest_files(manifest, "data") == [("data/lower.txt", 1)]
    copy = manifest_copy(manifest, prefix="data")
    assert manifest_files(copy) == [("lower.txt", 1)]
    buffer = io.BytesIO()
    manifest_write_zip(manifest, buffer, prefix="data")
    assert zipfile.ZipFile(buffer).namelist() == ["lower.txt"]

    assert manifest_delete_path(manifest, "data") == 1
    assert manifest_files(manifest) == [("Data/upper.txt", 1)]


def test_it_copies_a_manifest_without_copying_bytes(db, backend):
    manifest = manifest_create()
    for path, content in package_files().items():
        manifest_put_file(manifest, f"src/{path}", io.BytesIO(content.encode()))
    manifest_put_file(manifest, "données/résumé.txt", io.BytesIO(b"r"))
    before = backend.objects()

    whole = manifest_copy(manifest)
    part = manifest_copy(manifest, prefix="src")

    assert backend.objects() == before
    assert Blob.objects.count() == len(before)
    assert manifest_files(whole) == manifest_files(manifest)
    assert [path for path, _ in manifest_files(part)] == sorted(package_files())
    assert set(part.entries.values_list("blob_id", flat=True)) <= set(
        manifest.entries.values_list("blob_id", flat=True)
    )


def test_it_copies_an_empty_folder_without_a_nameless_entry(db):
    manifest = manifest_create()
    manifest_put_folder(manifest, "empty")
    manifest_put_folder(manifest, "empty/inner")
    copy = manifest_copy(manifest, prefix="empty")
    assert list(copy.entries.values_list("path", flat=True)) == ["inner/"]


def test_it_round_trips_a_manifest_through_a_zip(db, backend):
    manifest = manifest_create()
    files = {
        "données/résumé.txt": "é".encode(),
        "日本語/ファイル.csv": b"a,b\n1,2\n",
        "empty.txt": b"",
        "deep/er/still.bin": bytes(range(256)),
    }
    for path, content in files.items():
        manifest_put_file(manifest, path, io.BytesIO(content))
    manifest_put_folder(manifest, "no-files")  # not a file: not in the zip
    objects = backend.objects()

    buffer = io.BytesIO()
    manifest_write_zip(manifest, buffer, root="pkg")
    archive = zipfile.ZipFile(buffer)
    assert sorted(archive.namelist()) == sorted(f"pkg/{path}" for path in files)
    assert {name[4:]: archive.read(name) for name in archive.namelist()} == files

    back = manifest_from_files((name[4:], archive.open(name)) for name in archive.namelist())
    assert manifest_files(back) == manifest_files(manifest)
    assert backend.objects() == objects  # same bytes, same blobs

    buffer = io.BytesIO()
    manifest_write_zip(manifest, buffer, prefix="données")
    assert zipfile.ZipFile(buffer).namelist() == ["résumé.txt"]


def test_it_deletes_bytes_only_when_no_manifest_refers_to_them(
    db, backend, django_capture_on_commit_callbacks
):
    first = manifest_create()
    manifest_put_file(first, "shared.txt", io.BytesIO(b"shared"))
    manifest_put_file(first, "only-first.txt", io.BytesIO(b"only first"))
    second = manifest_create()
    manifest_put_file(second, "also-shared.txt", io.BytesIO(b"shared"))
    snapshot = manifest_copy(first)
    assert sorted(backend.objects().values()) == [b"only first", b"shared"]

    with django_capture_on_commit_callbacks(execute=True):
        manifest_delete(first)
    assert sorted(backend.objects().values()) == [b"only first", b"shared"]  # snapshot keeps it

    with django_capture_on_commit_callbacks(execute=True):
        manifest_delete(snapshot)
    assert list(backend.objects().values()) == [b"shared"]
    assert blob_names() == set(backend.objects())

    with django_capture_on_commit_callbacks(execute=True):
        manifest_delete(second)
    assert backend.objects() == {}
    assert Blob.objects.count() == 0
    assert Manifest.objects.count() == 0


def test_it_keeps_bytes_a_path_deletion_still_needs(
    db, backend, django_capture_on_commit_callbacks
):
    manifest = manifest_create()
    manifest_put_file(manifest, "a/one.txt", io.BytesIO(b"twice"))
    manifest_put_file(manifest, "b/two.txt", io.BytesIO(b"twice"))
    manifest_put_file(manifest, "a/gone.txt", io.BytesIO(b"gone"))

    with django_capture_on_commit_callbacks(execute=True):
        assert manifest_delete_path(manifest, "a") == 2
    assert list(backend.objects().values()) == [b"twice"]
    assert manifest_files(manifest) == [("b/two.txt", 5)]


def test_it_collects_nothing_that_is_in_use(db, backend):
    manifest = manifest_create()
    entry = manifest_put_file(manifest, "a.txt", io.BytesIO(b"in use"))
    orphan = blob_store(io.BytesIO(b"orphan"))
    blob_collect_garbage([entry.blob_id, orphan.pk, "0" * 64])
    assert list(backend.objects().values()) == [b"in use"]
    assert blob_names() == {entry.blob.storage_name}


def test_it_keeps_bytes_referred_to_again_while_collecting(db, backend):
    """Another upload refers to the blob between the in-use check and the deletion."""
    blob = blob_store(io.BytesIO(b"wanted again"))
    manifest = manifest_create()

    def meanwhile(execute, sql, params, many, context):
        # just before the candidates for deletion are read
        if 'FROM "aicenter_blob"' in sql:
            if not manifest.entries.exists():
                ManifestEntry.objects.create(manifest=manifest, path="a.txt", blob=blob, size=12)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(meanwhile):
        blob_collect_garbage([blob.pk])
    assert manifest.entries.exists()
    assert list(backend.objects().values()) == [b"wanted again"]
    with blob_open(blob) as f:
        assert f.read() == b"wanted again"


# end to end, through the API


def test_it_creates_a_package_and_downloads_it(db, backend, api_as, bob):
    api = api_as(bob)
    response = api.post(
        "/api/v1/projects/alpha/packages",
        {"name": "classifier", "file": upload(content=package_zip())},
    )
    assert response.status_code == 201, response.content
    sources = {path: content.encode() for path, content in package_files().items()}
    assert sorted(backend.objects().values()) == sorted(sources.values())
    assert blob_names() == set(backend.objects())

    download = api.get("/api/v1/projects/alpha/packages/classifier/versions/1.0/download")
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert {name: archive.read(name) for name in archive.namelist()} == {
        f"classifier/{path}": content for path, content in sources.items()
    }


def test_it_puts_a_dataset_file_and_gets_it_back(db, backend, api_as, bob):
    api = api_as(bob)
    base = "/api/v1/projects/alpha/datasets"
    assert api.post_json(base, {"name": "invoices"}).status_code == 201
    content = "montant;libellé\n12,50;café\n".encode() * 1000
    url = f"{base}/invoices/files/{quote('données/résumé.csv')}"

    put = api.put(url, content, content_type="application/octet-stream")
    assert put.status_code == 201, put.content
    assert put.json() == {"path": "données/résumé.csv", "size": len(content)}
    assert list(backend.objects().values()) == [content]

    get = api.get(url)
    assert get.status_code == 200
    assert b"".join(get.streaming_content) == content
    assert get["Content-Length"] == str(len(content))
    listing = api.get(f"{base}/invoices/files", {"prefix": "données"}).json()
    assert listing == {"files": [{"path": "données/résumé.csv", "size": len(content)}]}

    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
