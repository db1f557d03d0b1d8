import io
import stat
import zipfile

import pytest

from aicenter.models import Blob, Manifest
from packages.models import Package, PackageVersion
from tests.conftest import stored_files, upload
from tests.factories import make_zip, package_files, package_zip

URL = "/api/v1/projects/alpha/packages"


def create(api, content=None, name="classifier", **fields):
    data = {"name": name, "file": upload(content=content), **fields}
    return api.post(URL, data)


def assert_nothing_stored():
    assert Package.objects.count() == 0
    assert PackageVersion.objects.count() == 0
    assert Blob.objects.count() == 0
    assert Manifest.objects.count() == 0
    assert stored_files() == []


def test_it_creates_a_package_with_version_1_0(api_as, bob):
    api = api_as(bob)
    response = create(api, package_zip(), description="Sorts invoices", gpu_required="true")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "classifier"
    assert body["gpu_required"] is True
    assert body["training_enabled"] is True
    assert [v["version"] for v in body["versions"]] == ["1.0"]
    assert body["versions"][0]["source"] == "uploaded"
    listing = api.get(URL).json()
    assert listing[0]["latest_version"] == "1.0"
    assert listing[0]["version_count"] == 1


def test_it_accepts_a_single_top_level_folder(api_as, bob):
    response = create(api_as(bob), package_zip(root="classifier"))
    assert response.status_code == 201, response.content
    version = PackageVersion.objects.get()
    assert sorted(version.manifest.entries.values_list("path", flat=True)) == [
        "main.py",
        "requirements.txt",
        "train.py",
    ]


def test_it_does_not_need_train_py_when_training_is_off(api_as, bob):
    response = create(api_as(bob), package_zip(**{"train.py": None}), training_enabled="false")
    assert response.status_code == 201, response.content


def test_it_uploads_the_next_major_version_and_downloads_it(api_as, bob):
    api = api_as(bob)
    create(api, package_zip())
    response = api.post(f"{URL}/classifier/versions", {"file": upload(content=package_zip())})
    assert response.status_code == 201
    assert response.json()["version"] == "2.0"
    download = api.get(f"{URL}/classifier/versions/2.0/download")
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == [
        "classifier/main.py",
        "classifier/requirements.txt",
        "classifier/train.py",
    ]
    assert archive.read("classifier/main.py").decode() == package_files()["main.py"]


def test_it_stores_identical_files_once(api_as, bob):
    api = api_as(bob)
    create(api, package_zip(), name="first")
    create(api, package_zip(), name="second")
    # six files, three distinct contents (main.py, train.py, the empty requirements.txt)
    assert Blob.objects.count() == 3
    assert len(stored_files()) == 3


def test_it_deletes_a_package_and_its_bytes(api_as, bob, django_capture_on_commit_callbacks):
    api = api_as(bob)
    create(api, package_zip())
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{URL}/classifier").status_code == 204
    assert_nothing_stored()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a zip", "not a zip archive"),
        (make_zip({**package_files(), "../evil.py": "x"}), "points outside"),
        (make_zip({**package_files(), "/etc/evil.py": "x"}), "absolute path"),
        (package_zip(**{"train.py": "class Main:\n  def train(self\n"}), "train.py: line"),
        (package_zip(**{"main.py": None}), "main.py is missing"),
        (package_zip(**{"requirements.txt": None}), "requirements.txt is missing"),
        (package_zip(**{"train.py": "class Other: pass\n"}), "train.py: there is no class Main"),
        (
            package_zip(**{"train.py": "class Main:\n  def __init__(self): pass\n"}),
            "train.py: class Main has no method save",
        ),
        (make_zip({}), "empty"),
    ],
    ids=[
        "not-zip",
        "dotdot",
        "absolute",
        "syntax",
        "no-main",
        "no-reqs",
        "no-class",
        "no-save",
        "empty",
    ],
)
def test_it_refuses_a_bad_zip_and_stores_nothing(api_as, bob, content, message):
    response = create(api_as(bob), content)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert message in " ".join(response.json()["errors"]["file"])
    assert_nothing_stored()


def test_it_names_every_missing_method(api_as, bob):
    response = create(api_as(bob), package_zip(**{"train.py": "class Main:\n  pass\n"}))
    errors = response.json()["errors"]["file"]
    for method in ("__init__", "train", "evaluate", "save"):
        assert f"train.py: class Main has no method {method}" in errors


def _zip_with_mode(name, mode):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in package_files().items():
            archive.writestr(path, content)
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        archive.writestr(info, "target")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mode, message",
    [(stat.S_IFLNK | 0o777, "symbolic link"), (stat.S_IFIFO | 0o644, "special file")],
    ids=["symlink", "fifo"],
)
def test_it_refuses_links_and_special_files(api_as, bob, mode, message):
    response = create(api_as(bob), _zip_with_mode("link", mode))
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert_nothing_stored()


def test_it_refuses_a_package_over_the_size_limit(api_as, bob, settings):
    settings.PACKAGE_MAX_UNCOMPRESSED_BYTES = 1000
    response = create(api_as(bob), package_zip(**{"model.bin": b"x" * 2000}))
    assert response.status_code == 400
    assert "over the limit of 1,000 bytes" in response.json()["detail"]
    assert_nothing_stored()


def test_it_refuses_a_zip_bomb_from_its_directory(api_as, bob):
    # 50 MB of zeros compress to ~50 KB: the ratio, read from the directory, gives it away.
    response = create(api_as(bob), package_zip(**{"weights.bin": b"\0" * 50_000_000}))
    assert response.status_code == 400
    assert "zip bomb" in response.json()["detail"]
    assert_nothing_stored()


@pytest.mark.parametrize(
    "name, message",
    [("", "A name is required"), ("my package", "not a valid name"), ("1st", "not a valid name")],
)
def test_it_refuses_a_bad_name(api_as, bob, name, message):
    response = create(api_as(bob), package_zip(), name=name)
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"]["name"])
    assert_nothing_stored()


def test_it_refuses_a_taken_name(api_as, bob):
    api = api_as(bob)
    create(api, package_zip())
    response = create(api, package_zip())
    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["name"][0]
    assert Package.objects.count() == 1


def test_it_reports_field_and_file_errors_together(api_as, bob):
    response = create(api_as(bob), b"nope", name="bad name", input_type="video")
    errors = response.json()["errors"]
    assert set(errors) == {"name", "input_type", "file"}


def test_it_refuses_a_missing_file(api_as, bob):
    response = api_as(bob).post(URL, {"name": "classifier"})
    assert response.status_code == 400
    assert "zip" in response.json()["errors"]["file"][0]


def test_it_refuses_a_bad_new_version_and_keeps_the_old_one(api_as, bob):
    api = api_as(bob)
    create(api, package_zip())
    blobs = Blob.objects.count()
    response = api.post(f"{URL}/classifier/versions", {"file": upload(content=b"not a zip")})
    assert response.status_code == 400
    assert PackageVersion.objects.count() == 1
    assert Blob.objects.count() == blobs


def test_unknown_package_and_version_are_404_json(api_as, bob):
    api = api_as(bob)
    assert api.get(f"{URL}/nothing").json()["detail"] == "No package 'nothing' in this project."
    create(api, package_zip())
    response = api.get(f"{URL}/classifier/versions/9.9/download")
    assert response.status_code == 404
    assert "no version 9.9" in response.json()["detail"]
