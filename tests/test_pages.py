"""The pages, driven through the test client the way a browser posts them (with and without
htmx)."""

import io
import re
import shutil
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from core.models import Blob, Event
from datasets.models import Dataset
from packages.models import Package, PackageVersion
from tests.conftest import requires, stored_files, upload
from tests.factories import info_zip, make_zip, package_zip, zip_with_raw_names

HTMX = {"HX-Request": "true"}


@pytest.fixture
def bobs(pages_as, bob):
    return pages_as(bob)


@pytest.fixture
def dataset(bobs):
    bobs.post("/p/alpha/datasets/", {"name": "invoices"})
    return Dataset.objects.get(name="invoices")


def files_of(dataset):
    return sorted(dataset.manifest.entries.values_list("path", flat=True))


def test_it_shows_every_section_of_a_project(bobs, dataset):
    for url, text in [
        ("/", "Alpha"),
        ("/p/alpha/", "Datasets"),
        ("/p/alpha/datasets/", "invoices"),
        ("/p/alpha/packages/", "No ML packages yet"),
        ("/p/alpha/pipelines/", "Pipelines"),
        ("/p/alpha/members/", "bob"),
    ]:
        response = bobs.get(url)
        assert response.status_code == 200, url
        assert text in response.content.decode(), url


def test_it_creates_a_package_through_the_form(bobs):
    response = bobs.post(
        "/p/alpha/packages/new/",
        {"name": "classifier", "file": upload(), "training_enabled": "on", "input_type": "json"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/p/alpha/packages/classifier/"
    page = bobs.get(response["Location"]).content.decode()
    assert "1.0" in page and "uploaded by bob" in page


def test_the_form_shows_each_problem_and_keeps_the_values(bobs):
    content = package_zip(**{"train.py": "class Main:\n  def __init__(self): pass\n"})
    response = bobs.post(
        "/p/alpha/packages/new/",
        {
            "name": "1bad",
            "description": "kept",
            "file": upload(content=content),
            "training_enabled": "on",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "train.py: class Main has no method save" in page
    assert "train.py: class Main has no method train" in page
    assert "not a valid name" in page
    assert ">kept</textarea>" in page
    assert not Package.objects.exists()


def test_htmx_gets_the_form_partial_or_a_client_redirect(bobs):
    response = bobs.post(
        "/p/alpha/packages/new/", {"name": "x", "file": upload(content=b"no")}, headers=HTMX
    )
    assert response.status_code == 400
    assert b"<html" not in response.content
    assert b"not a zip archive" in response.content
    response = bobs.post(
        "/p/alpha/packages/new/",
        {"name": "x", "file": upload(), "training_enabled": "on"},
        headers=HTMX,
    )
    assert response["HX-Redirect"] == "/p/alpha/packages/x/"


def test_it_uploads_a_new_major_version_and_deletes_one(bobs, django_capture_on_commit_callbacks):
    bobs.post("/p/alpha/packages/new/", {"name": "p", "file": upload(), "training_enabled": "on"})
    response = bobs.post("/p/alpha/packages/p/upload/", {"file": upload()})
    assert response.status_code == 302
    assert PackageVersion.objects.filter(major=2, minor=0).exists()
    response = bobs.post("/p/alpha/packages/p/upload/", {"file": upload(content=b"junk")})
    assert response.status_code == 400
    assert b"not a zip archive" in response.content
    with django_capture_on_commit_callbacks(execute=True):
        assert bobs.post("/p/alpha/packages/p/2.0/delete/").status_code == 302
    assert list(PackageVersion.objects.values_list("major", flat=True)) == [1]


def test_the_version_page_shows_files_and_previews_text(bobs):
    bobs.post(
        "/p/alpha/packages/new/",
        {
            "name": "p",
            "training_enabled": "on",
            "file": upload(content=package_zip(**{"config/params.json": '{"lr": 0.1}'})),
        },
    )
    page = bobs.get("/p/alpha/packages/p/1.0/").content.decode()
    assert "train.py" in page and "config" in page
    page = bobs.get("/p/alpha/packages/p/1.0/", {"file": "train.py"}).content.decode()
    assert "def save(self)" in page
    page = bobs.get("/p/alpha/packages/p/1.0/", {"path": "config", "file": "config/params.json"})
    assert "&quot;lr&quot;: 0.1" in page.content.decode()
    response = bobs.get("/p/alpha/packages/p/1.0/download/")
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert "p/config/params.json" in names
    response = bobs.get("/p/alpha/packages/p/1.0/files/main.py")
    assert b"class Main" in b"".join(response.streaming_content)


def test_it_uploads_a_folder_keeping_its_paths(bobs, dataset):
    files = [
        SimpleUploadedFile("a.csv", b"1,2"),
        SimpleUploadedFile("résumé.txt", "é".encode()),
    ]
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload/",
        {"files": files, "paths": ["scans/2024/a.csv", "scans/données/résumé.txt"]},
    )
    assert response.status_code == 302
    assert files_of(dataset) == ["scans/2024/a.csv", "scans/données/résumé.txt"]
    page = bobs.get("/p/alpha/datasets/invoices/", {"path": "scans"}).content.decode()
    assert "2024" in page and "données" in page
    response = bobs.get("/p/alpha/datasets/invoices/files/scans/données/résumé.txt")
    assert b"".join(response.streaming_content) == "é".encode()


def test_without_javascript_files_keep_their_names(bobs, dataset):
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload/",
        {"files": [SimpleUploadedFile("a.csv", b"1")], "folder": "in"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/p/alpha/datasets/invoices/?path=in"
    assert files_of(dataset) == ["in/a.csv"]


def test_it_unpacks_a_zip_into_the_current_folder(bobs, dataset):
    content = make_zip({"x/1.txt": "1", "x/2.txt": "2", "__MACOSX/._junk": "j"})
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload-zip/",
        {"zip": SimpleUploadedFile("d.zip", content), "folder": "raw"},
    )
    assert response.status_code == 302
    assert files_of(dataset) == ["raw/x/1.txt", "raw/x/2.txt"]


def test_it_unpacks_utf8_names_from_info_zip(bobs, dataset):
    requires(shutil.which("zip") is not None, "Info-ZIP's zip is not installed")
    content = info_zip({"データ/データ_ñ.txt": "1"})
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload-zip/", {"zip": SimpleUploadedFile("d.zip", content)}
    )
    assert response.status_code == 302
    assert files_of(dataset) == ["データ/データ_ñ.txt"]


def test_it_reads_unflagged_zip_names_as_utf8_when_they_are_else_cp437(bobs, dataset):
    content = zip_with_raw_names({"データ_ñ.txt".encode(): b"1", b"caf\x82.txt": b"2"})
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload-zip/", {"zip": SimpleUploadedFile("d.zip", content)}
    )
    assert response.status_code == 302
    assert files_of(dataset) == ["café.txt", "データ_ñ.txt"]


@pytest.mark.parametrize(
    "content, message",
    [
        (
            make_zip({"a.csv": "first", "b.csv": "second"}, compression=zipfile.ZIP_STORED).replace(
                b"second", b"SECOND"
            ),
            "The zip is damaged: b.csv fails its CRC check.",
        ),
        (
            make_zip({"a.csv": "1"}, compression=zipfile.ZIP_STORED).replace(b"a.csv", b"x.csv", 1),
            "The zip is damaged: a.csv has another name in its local header.",
        ),
        (make_zip({"a": "1", "a/b.txt": "2"}), "'a' is both a file and a folder."),
    ],
    ids=["bad-crc", "local-name-differs", "file-and-folder"],
)
def test_a_damaged_dataset_zip_is_refused_and_nothing_is_stored(bobs, dataset, content, message):
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload-zip/", {"zip": SimpleUploadedFile("d.zip", content)}
    )
    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert files_of(dataset) == []
    assert Blob.objects.count() == 0
    assert stored_files() == []


def test_the_package_form_refuses_a_damaged_zip_and_stores_nothing(bobs):
    content = package_zip(**{"a": "file", "a/b.txt": "in a folder"})
    response = bobs.post(
        "/p/alpha/packages/new/",
        {"name": "classifier", "file": upload(content=content), "training_enabled": "on"},
    )
    assert response.status_code == 400
    assert escape("'a' is both a file and a folder.") in response.content.decode()
    assert not Package.objects.exists()
    assert stored_files() == []


@pytest.mark.parametrize(
    "url, data, message",
    [
        ("upload/", {}, "Choose at least one file"),
        (
            "upload/",
            {"files": [SimpleUploadedFile("a", b"1")], "paths": ["../a"]},
            "&#x27;..&#x27;",
        ),
        ("upload-zip/", {"zip": SimpleUploadedFile("d.zip", b"not a zip")}, "not a zip archive"),
        (
            "upload-zip/",
            {"zip": SimpleUploadedFile("d.zip", make_zip({"../x": "1"}))},
            "points outside",
        ),
        ("folders/", {"name": ""}, "Give the new folder a name"),
        ("folders/", {"name": "a/b"}, "one folder at a time"),
        ("folders/", {"name": ".."}, "not a valid path"),
    ],
)
def test_bad_dataset_input_is_refused_and_nothing_is_stored(bobs, dataset, url, data, message):
    response = bobs.post(f"/p/alpha/datasets/invoices/{url}", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert files_of(dataset) == []
    assert Blob.objects.count() == 0
    assert stored_files() == []


def test_it_creates_and_deletes_folders(bobs, dataset):
    assert bobs.post("/p/alpha/datasets/invoices/folders/", {"name": "train"}).status_code == 302
    response = bobs.post("/p/alpha/datasets/invoices/folders/", {"name": "train"})
    assert response.status_code == 400
    assert b"already exists" in response.content
    page = bobs.get("/p/alpha/datasets/invoices/").content.decode()
    assert "train" in page
    assert (
        bobs.post("/p/alpha/datasets/invoices/delete-path/", {"path": "train"}).status_code == 302
    )
    assert files_of(dataset) == []


def test_deleting_what_is_already_gone_says_so_on_the_page(bobs, dataset):
    # two tabs: the folder was deleted in the other one
    response = bobs.post("/p/alpha/datasets/invoices/delete-path/", {"path": "train"})
    assert response.status_code == 404
    assert "There is no file or folder &#x27;train&#x27;." in response.content.decode()
    assert "Upload" in response.content.decode()  # the dataset's page, not a bare 404
    assert not Event.objects.filter(action="files_deleted").exists()


def test_a_duplicate_dataset_name_is_refused_in_place(bobs, dataset):
    response = bobs.post("/p/alpha/datasets/", {"name": "invoices"}, headers=HTMX)
    assert response.status_code == 400
    assert b"already exists" in response.content
    assert b"<html" not in response.content


def test_it_deletes_a_dataset(bobs, dataset):
    response = bobs.post("/p/alpha/datasets/invoices/delete/")
    assert response.status_code == 302
    assert not Dataset.objects.exists()


def test_big_folders_are_paginated_without_a_query_per_row(
    bobs, dataset, django_assert_max_num_queries
):
    from core.blobs import blob_store
    from core.models import ManifestEntry

    blob = blob_store(io.BytesIO(b"x"))
    ManifestEntry.objects.bulk_create(
        ManifestEntry(manifest=dataset.manifest, path=f"f/{i:05}.txt", blob=blob, size=1)
        for i in range(10_000)
    )
    with django_assert_max_num_queries(12):
        page = bobs.get("/p/alpha/datasets/invoices/", {"path": "f"}).content.decode()
    assert "Page 1 of 100" in page
    assert "10,000 files" in page
    with django_assert_max_num_queries(12):
        root = bobs.get("/p/alpha/datasets/").content.decode()
    assert "10,000" in root


def test_a_folder_upload_that_contradicts_itself_stores_nothing(bobs, dataset):
    files = [SimpleUploadedFile("a", b"1"), SimpleUploadedFile("b", b"2")]
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload/", {"files": files, "paths": ["x/a", "x/a/b"]}
    )
    assert response.status_code == 400
    assert "is a folder" in response.content.decode()
    assert files_of(dataset) == [] and stored_files() == []


def test_replacing_files_frees_the_old_bytes(bobs, dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bobs.post(
            "/p/alpha/datasets/invoices/upload/", {"files": [SimpleUploadedFile("a.csv", b"old")]}
        )
        bobs.post(
            "/p/alpha/datasets/invoices/upload/", {"files": [SimpleUploadedFile("a.csv", b"new")]}
        )
    assert Blob.objects.count() == 1
    assert [p.read_bytes() for p in stored_files()] == [b"new"]


def test_a_thousand_files_upload_in_a_few_dozen_queries(
    bobs, dataset, django_assert_max_num_queries
):
    files = [SimpleUploadedFile(f"f{i}.txt", f"{i}".encode()) for i in range(1000)]
    # 28 on SQLite: blob lookups and entries in batches. A query per file would be 1,000 more.
    with django_assert_max_num_queries(40):
        response = bobs.post(
            "/p/alpha/datasets/invoices/upload/",
            {"files": files, "paths": [f"many/f{i}.txt" for i in range(1000)]},
        )
    assert response.status_code == 302
    assert len(files_of(dataset)) == 1000


def test_an_upload_says_how_many_files_arrived(bobs, dataset):
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload/",
        {"files": [SimpleUploadedFile("a.csv", b"1"), SimpleUploadedFile("b.csv", b"2")]},
        follow=True,
    )
    assert "Uploaded 2 files." in response.content.decode()
    content = make_zip({"x/1.txt": "1"})
    response = bobs.post(
        "/p/alpha/datasets/invoices/upload-zip/",
        {"zip": SimpleUploadedFile("d.zip", content)},
        follow=True,
    )
    assert "Unpacked 1 file from the zip." in response.content.decode()


def test_a_deleted_major_is_never_given_again(bobs):
    bobs.post("/p/alpha/packages/new/", {"name": "p", "file": upload(), "training_enabled": "on"})
    assert bobs.post("/p/alpha/packages/p/upload/", {"file": upload()}).status_code == 302
    assert bobs.post("/p/alpha/packages/p/2.0/delete/").status_code == 302
    assert "The zip becomes version 3.0" in bobs.get("/p/alpha/packages/p/").content.decode()
    assert bobs.post("/p/alpha/packages/p/upload/", {"file": upload()}).status_code == 302
    numbers = [v.number for v in Package.objects.get(name="p").versions.all()]
    assert numbers == ["3.0", "1.0"]
    assert bobs.get("/p/alpha/packages/p/2.0/").status_code == 404


def test_the_package_form_keeps_the_chosen_zip_in_place_or_says_to_choose_it_again(bobs):
    bobs.post("/p/alpha/packages/new/", {"name": "taken", "file": upload()})
    # htmx swaps the form in place: the file input is kept as it is, with the chosen zip
    partial = bobs.post(
        "/p/alpha/packages/new/", {"name": "taken", "file": upload()}, headers=HTMX
    ).content.decode()
    assert "already exists" in partial
    assert re.search(r'<label class="dropzone"[^>]* id="package-zip"[^>]* hx-preserve', partial)
    # without JavaScript the page is reloaded, and the browser forgets the file: say so
    page = bobs.post("/p/alpha/packages/new/", {"name": "taken", "file": upload()})
    assert "Choose the zip again" in page.content.decode()
    assert Package.objects.count() == 1


@pytest.mark.parametrize("name", ["", "   "])
def test_a_blank_folder_name_says_give_it_a_name(bobs, dataset, name):
    response = bobs.post("/p/alpha/datasets/invoices/folders/", {"name": name}, headers=HTMX)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the new folder a name." in page
    assert "without" not in page
    assert files_of(dataset) == []


def test_a_bad_folder_name_is_kept_in_the_field(bobs, dataset):
    response = bobs.post("/p/alpha/datasets/invoices/folders/", {"name": "a/b"}, headers=HTMX)
    page = response.content.decode()
    assert "one folder at a time" in page
    assert 'value="a/b"' in page
