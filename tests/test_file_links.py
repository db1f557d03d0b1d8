"""Every download link of the file browsers (datasets, package versions, a run's artifacts and
snapshots) escapes each segment of the path, so names with `#`, `?`, `%`, `&`, `+`, spaces
and non-ASCII letters download their own bytes, not a 404 page."""

import html
import io
import re

import pytest

from core.manifests import manifest_from_files
from datasets.models import Dataset
from pipelines.models import PipelineRun
from tests.conftest import classifier_run, upload

NAMES = {
    "Ünïcödé ñame (copy) #1.csv": b"unicode,hash\n",
    "why?.txt": b"question\n",
    "100% & more+less.txt": b"percent ampersand plus\n",
    "dir #2/a b?c%20d.txt": b"in a folder with a hash\n",
}


@pytest.fixture
def bobs(pages_as, bob):
    return pages_as(bob)


def download_links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)" download', page)]


def fetch(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


def check_every_link(client, browse_url: str) -> None:
    """The browser's Download buttons, in the root and in the folder, and the preview's."""
    for folder in ("", "dir #2"):
        page = client.get(browse_url, {"path": folder}).content.decode()
        wanted = {p: b for p, b in NAMES.items() if p.rpartition("/")[0] == folder}
        links = download_links(page)
        assert len(links) == len(wanted), links
        for link in links:
            assert "#" not in link and "?" not in link, link
        assert sorted(fetch(client, link) for link in links) == sorted(wanted.values())
    for path, content in NAMES.items():
        page = client.get(browse_url, {"file": path}).content.decode()
        (link,) = download_links(page.split('id="preview"', 1)[1])
        assert fetch(client, link) == content, path


def test_it_downloads_dataset_files_with_any_name(bobs):
    bobs.post("/p/alpha/datasets/", {"name": "invoices"})
    for path, content in NAMES.items():
        folder, _, name = path.rpartition("/")
        form = {"folder": folder, "files": upload(name, content)}
        response = bobs.post("/p/alpha/datasets/invoices/upload/", form)
        assert response.status_code == 302, response.content
    assert Dataset.objects.get().manifest.entries.filter(blob__isnull=False).count() == len(NAMES)
    check_every_link(bobs, "/p/alpha/datasets/invoices/")


def test_it_downloads_package_version_files_with_any_name(bobs):
    extra = {f"data/{path}": content for path, content in NAMES.items()}
    response = bobs.post("/p/alpha/packages/new/", {"name": "classifier", "file": upload(**extra)})
    assert response.status_code == 302
    page = bobs.get("/p/alpha/packages/classifier/1.0/", {"path": "data/dir #2"}).content.decode()
    (link,) = download_links(page)
    assert fetch(bobs, link) == NAMES["dir #2/a b?c%20d.txt"]
    page = bobs.get("/p/alpha/packages/classifier/1.0/", {"path": "data"}).content.decode()
    links = download_links(page)
    assert sorted(fetch(bobs, link) for link in links) == sorted(
        content for path, content in NAMES.items() if "/" not in path
    )


@pytest.mark.parametrize("which", ["artifacts", "snapshot", "evaluation-snapshot"])
def test_it_downloads_a_runs_outputs_with_any_name(bobs, project, bob, runs_stay_here, which):
    from tests.conftest import classifier_and_invoices

    classifier_and_invoices(project, bob)
    run = classifier_run(project, bob)
    manifest = manifest_from_files((p, io.BytesIO(b)) for p, b in NAMES.items())
    field = which.replace("-", "_")
    PipelineRun.objects.filter(pk=run.pk).update(status="successful", **{field: manifest})
    check_every_link(bobs, f"/p/alpha/pipelines/{run.pk}/{which}/")
