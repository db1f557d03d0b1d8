"""A run's artifacts browsed one folder at a time (issue 13): each folder's sub-folders with the
files and bytes under them, its own files a page at a time, the same few queries and never
more entries read than a page shows, in a tree of 10,000 files; nothing outside the run's
artifacts, whatever the path asked for.

The bobs fixture is in tests/pipelines/conftest.py."""

import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import strip_tags

from core.blobs import blob_store
from core.models import Manifest, ManifestEntry
from core.pages import FOLDER_PAGE
from tests.pipelines.pages import queued_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("runs_stay_here")]

TREE = {
    "report.json": 5,
    "plots/loss.png": 300,
    "plots/epochs/1.png": 1_000,
    "plots/epochs/2.png": 2_000,
    "plots/epochs/deep/er/3.png": 4_000,
    "Données/été.csv": 7,
    "empty/": 0,  # an empty folder, as created on a dataset
    "ab/x.txt": 11,
    "Plots2/y.txt": 13,
}


def _artifacts(run, tree):
    blob = blob_store(io.BytesIO(b"x"))
    manifest = Manifest.objects.create()
    ManifestEntry.objects.bulk_create(
        ManifestEntry(
            manifest=manifest, path=path, blob=None if path.endswith("/") else blob, size=size
        )
        for path, size in tree.items()
    )
    run.artifacts = manifest
    run.save(update_fields=["artifacts"])
    return f"/p/alpha/pipelines/{run.pk}/artifacts/"


def _rows(response):
    """(kind, name, files, size) of each row of the folder's table, as a person reads them."""
    assert response.status_code == 200, response.content[:300]
    rows = []
    for kind, item in response.context["page"]:
        rows.append((kind, item.name, getattr(item, "file_count", None), item.size))
    return rows


def test_a_folder_lists_its_own_folders_and_files_with_what_is_under_them(bobs, project, bob):
    base = _artifacts(queued_run(project, bob), TREE)
    root = bobs.get(base)
    assert _rows(root) == [
        ("folder", "ab", 1, 11),
        ("folder", "Données", 1, 7),
        ("folder", "empty", 0, 0),
        ("folder", "plots", 4, 7_300),
        ("folder", "Plots2", 1, 13),
        ("file", "report.json", None, 5),
    ]
    text = root.content.decode()
    assert "8 files · 7.2\xa0KB" in strip_tags(text)
    assert f'href="{base}?path=plots"' in text  # a folder opens in place
    assert f'href="{base}files/report.json" download' in text
    assert f'href="{base}?path=Donn%C3%A9es"' in text

    plots = bobs.get(base, {"path": "plots"})
    assert _rows(plots) == [("folder", "epochs", 3, 7_000), ("file", "loss.png", None, 300)]
    assert "4 files · 7.1\xa0KB" in strip_tags(plots.content.decode())
    assert f'href="{base}files/plots/loss.png" download' in plots.content.decode()
    assert f'href="{base}?path=plots/epochs"' in plots.content.decode()
    deep = bobs.get(base, {"path": "plots/epochs/deep"})
    assert _rows(deep) == [("folder", "er", 1, 4_000)]
    assert _rows(bobs.get(base, {"path": "Données"})) == [("file", "été.csv", None, 7)]
    empty = bobs.get(base, {"path": "empty"})
    assert _rows(empty) == [] and "This folder is empty." in empty.content.decode()


def test_a_path_never_lists_anything_outside_the_runs_artifacts(bobs, project, bob):
    base = _artifacts(queued_run(project, bob), TREE)
    other = _artifacts(queued_run(project, bob), {"secret/key.txt": 3, "plots/their.png": 9})
    names = {"key.txt", "their.png", "secret"}
    for path in ("../", "..", "/", "/etc", "plots/../..", "plots/../../secret", f"../../{other}"):
        response = bobs.get(base, {"path": path})
        listed = {name for _, name, _, _ in _rows(response)}
        # the root instead (a path with '..'), or a folder of its own ('/etc' is 'etc': none)
        assert listed in ({"ab", "Données", "empty", "plots", "Plots2", "report.json"}, set())
        assert not names & listed, path
    # LIKE's wildcards and case are no way into another folder
    for path in ("a_", "a%", "AB", "plot%", "PLOTS"):
        assert _rows(bobs.get(base, {"path": path})) == [], path
    assert "missing" in str(bobs.get(base, {"file": "../secret/key.txt"}).context["preview"].kind)


def test_a_folder_of_a_10000_file_tree_reads_one_page_of_entries_in_two_queries(
    bobs, project, bob, django_assert_max_num_queries, monkeypatch
):
    tree = {f"images/class_{c:02}/img_{i:04}.png": 10 for c in range(10) for i in range(400)}
    tree |= {f"predictions/{i:05}.json": 3 for i in range(5_990)}
    tree |= {f"a/b/c/d/{i}.txt": 1 for i in range(10)}
    base = _artifacts(queued_run(project, bob), tree)
    built = []
    real = ManifestEntry.from_db.__func__
    monkeypatch.setattr(
        ManifestEntry, "from_db", classmethod(lambda *a: built.append(1) or real(*a))
    )

    def page(**query):
        built.clear()
        with CaptureQueriesContext(connection) as queries:
            response = bobs.get(base, query)
        assert response.status_code == 200
        most = FOLDER_PAGE + ("file" in query)  # and the file previewed
        assert len(built) <= most, f"{len(built)} entries read for one page"
        return response, len(queries)

    root, at_root = page()
    assert [name for _, name, _, _ in _rows(root)] == ["a", "images", "predictions"]
    assert "10,000 files" in root.content.decode()
    assert _rows(root)[2] == ("folder", "predictions", 5_990, 17_970)
    flat, in_flat = page(path="predictions")
    assert len(_rows(flat)) == 100 and "Page 1 of 60" in flat.content.decode()
    assert 'href="?path=predictions&amp;page=2"' in flat.content.decode()
    last, on_last = page(path="predictions", page="60")
    assert [name for _, name, _, _ in _rows(last)][-1] == "05989.json"
    assert len(_rows(last)) == 90
    deep, in_deep = page(path="a/b/c/d")
    assert len(_rows(deep)) == 10
    images, in_images = page(path="images")
    assert _rows(images)[3] == ("folder", "class_03", 400, 4_000)
    # the same queries wherever in the tree, whatever its size (one fewer without files)
    assert in_flat == on_last == in_deep == at_root + 1 == in_images + 1
    with django_assert_max_num_queries(in_flat + 1):  # and the file previewed
        page(path="images/class_07", page="2", file="images/class_07/img_0001.png")


def test_the_dataset_browser_and_a_version_share_the_folder_pages(bobs, project, bob):
    from datasets.models import Dataset

    dataset = Dataset.objects.get(name="invoices")
    response = bobs.get("/p/alpha/datasets/invoices/")
    assert _rows(response) == [("folder", "train", 2, 4)]
    train = bobs.get("/p/alpha/datasets/invoices/", {"path": "train"})
    assert _rows(train) == [("folder", "deep", 1, 1), ("file", "a.csv", None, 3)]
    assert re.search(r'data-confirm="Delete the folder deep', train.content.decode())
    assert dataset.manifest.entries.count() == 2
