import io
import shutil
import stat
import zipfile

import pytest

from core.models import Blob, Manifest
from packages.models import Package, PackageVersion
from tests.conftest import classifier_run, requires, stored_files, upload
from tests.factories import info_zip, make_zip, package_files, package_zip, zip_with_raw_names

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


def test_it_deletes_a_version_and_never_gives_its_number_again(
    api_as, bob, django_capture_on_commit_callbacks
):
    api = api_as(bob)
    create(api, package_zip())
    api.post(f"{URL}/classifier/versions", {"file": upload(content=package_zip(extra="2"))})
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{URL}/classifier/versions/2.0").status_code == 204
    assert [v["version"] for v in api.get(f"{URL}/classifier").json()["versions"]] == ["1.0"]
    assert api.get(f"{URL}/classifier/versions/2.0/download").status_code == 404
    assert api.delete(f"{URL}/classifier/versions/2.0").status_code == 404
    assert len(stored_files()) == 3  # version 1.0's files only
    response = api.post(f"{URL}/classifier/versions", {"file": upload(content=package_zip())})
    assert response.json()["version"] == "3.0"


def test_a_version_that_runs_use_is_not_deleted(api_as, bob, project):
    from datasets.services import dataset_create, dataset_file_put

    api = api_as(bob)
    create(api, package_zip())
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
    run = classifier_run(project, bob)
    response = api.delete(f"{URL}/classifier/versions/1.0")
    assert response.status_code == 409
    assert f"pipeline run(s) {run.pk} use it" in response.json()["detail"]
    assert PackageVersion.objects.get().deleted_at is None


def test_viewers_and_outsiders_cannot_delete_a_version(api_as, bob, vera, charlie):
    create(api_as(bob), package_zip())
    assert api_as(vera).delete(f"{URL}/classifier/versions/1.0").status_code == 403
    assert api_as(charlie).delete(f"{URL}/classifier/versions/1.0").status_code == 404
    assert api_as(bob).delete(f"{URL}/classifier/versions/one").status_code == 404
    assert PackageVersion.objects.get().deleted_at is None


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
    [
        ("", "A name is required"),
        ("my package", "not a valid name"),
        ("1st", "not a valid name"),
        ("new", "names a page of the packages list"),  # /packages/new/ is the form
    ],
)
def test_it_refuses_a_bad_name(api_as, bob, name, message):
    response = create(api_as(bob), package_zip(), name=name)
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"]["name"])
    assert_nothing_stored()


def test_it_answers_409_for_a_taken_name(api_as, bob):
    api = api_as(bob)
    create(api, package_zip())
    response = create(api, package_zip())
    assert response.status_code == 409
    assert "already exists" in response.json()["errors"]["name"][0]
    assert Package.objects.count() == 1
    assert PackageVersion.objects.count() == 1


def test_a_taken_name_with_other_problems_is_400(api_as, bob):
    api = api_as(bob)
    create(api, package_zip())
    response = create(api, b"not a zip")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "file"}


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


def _file_names(api, name="classifier"):
    download = api.get(f"{URL}/{name}/versions/1.0/download")
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    return {path.removeprefix(f"{name}/") for path in names}


def test_it_reads_utf8_names_from_info_zip(api_as, bob):
    requires(shutil.which("zip") is not None, "Info-ZIP's zip is not installed")
    api = api_as(bob)
    response = create(api, info_zip({**package_files(), "データ/データ_ñ.txt": "x"}))
    assert response.status_code == 201, response.json()
    assert "データ/データ_ñ.txt" in _file_names(api)


def test_it_reads_unflagged_names_as_utf8_when_they_are_else_cp437(api_as, bob):
    api = api_as(bob)
    files = {name.encode(): content.encode() for name, content in package_files().items()}
    files["データ_ñ.txt".encode()] = b"utf-8"
    files[b"caf\x82.txt"] = b"cp437, from an old Windows zip"
    assert create(api, zip_with_raw_names(files)).status_code == 201
    assert {"データ_ñ.txt", "café.txt"} <= _file_names(api)


def _damaged(content: bytes, old: bytes, new: bytes) -> bytes:
    """`content` with the first `old` (in a stored zip, a member's bytes or its name in the
    local header) replaced by `new`, its central directory untouched."""
    assert old in content and len(old) == len(new)
    return content.replace(old, new, 1)


STORED = {**package_files(), "weights.bin": b"weights v1"}
DAMAGED = [
    (
        _damaged(make_zip(STORED, compression=zipfile.ZIP_STORED), b"weights v1", b"weights v2"),
        "The zip is damaged: weights.bin fails its CRC check.",
    ),
    (
        _damaged(make_zip(STORED, compression=zipfile.ZIP_STORED), b"trained", b"TRAINED"),
        "The zip is damaged: train.py fails its CRC check.",
    ),
    (
        _damaged(make_zip(STORED, compression=zipfile.ZIP_STORED), b"weights.bin", b"weights.exe"),
        "The zip is damaged: weights.bin has another name in its local header.",
    ),
    (
        make_zip({**package_files(), "a": "file", "a/b.txt": "in a folder"}),
        "'a' is both a file and a folder.",
    ),
    (make_zip({**package_files(), "a/": "", "a": "file"}), "'a' is both a file and a folder."),
]
DAMAGED_IDS = ["bad-crc", "bad-crc-in-train-py", "local-name-differs", "file-and-folder", "dir"]


@pytest.mark.parametrize("content, message", DAMAGED, ids=DAMAGED_IDS)
def test_it_refuses_a_damaged_zip_and_stores_nothing(api_as, bob, content, message):
    response = create(api_as(bob), content)
    assert response.status_code == 400
    assert message in response.json()["errors"]["file"]
    assert_nothing_stored()


@pytest.mark.parametrize("content, message", DAMAGED, ids=DAMAGED_IDS)
def test_it_refuses_a_damaged_new_version_and_stores_nothing(api_as, bob, content, message):
    api = api_as(bob)
    create(api, package_zip())
    blobs, files = Blob.objects.count(), stored_files()
    response = api.post(f"{URL}/classifier/versions", {"file": upload(content=content)})
    assert response.status_code == 400
    assert message in response.json()["errors"]["file"]
    assert PackageVersion.objects.count() == 1
    assert (Blob.objects.count(), stored_files()) == (blobs, files)


def _with_central_header(content: bytes, name: bytes, *, flags: int = 0, method: int = 0) -> bytes:
    """`content` with `name`'s central directory entry claiming these flags and this method."""
    start = content.index(b"PK\x01\x02")
    while content[start + 46 : start + 46 + len(name)] != name:
        start = content.index(b"PK\x01\x02", start + 4)
    header = bytearray(content)
    header[start + 8 : start + 10] = flags.to_bytes(2, "little")
    header[start + 10 : start + 12] = method.to_bytes(2, "little")
    return bytes(header)


@pytest.mark.parametrize(
    "flags, method, message",
    [
        (0x1, zipfile.ZIP_STORED, "'weights.bin' is encrypted; upload a zip without a password."),
        (0, 9, "'weights.bin' is compressed with a method this server can't read (method 9)"),
    ],
    ids=["encrypted", "deflate64"],
)
def test_it_refuses_members_it_cannot_read(api_as, bob, flags, method, message):
    content = make_zip(STORED, compression=zipfile.ZIP_STORED)
    content = _with_central_header(content, b"weights.bin", flags=flags, method=method)
    response = create(api_as(bob), content)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert_nothing_stored()
