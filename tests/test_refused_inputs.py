"""Input that makes no sense is refused with a message saying why: never a 500, never stored."""

import pytest
from django.core.exceptions import ValidationError

from core.manifests import clean_path
from core.models import Blob
from pipelines.models import LogChunk
from tests.conftest import classifier_and_invoices, classifier_run

pytestmark = pytest.mark.usefixtures("runs_stay_here")


@pytest.fixture
def run(project, bob):
    classifier_and_invoices(project, bob)
    run = classifier_run(project, bob)
    for seq, text in enumerate(["one\n", "two\n", "three\n"], start=1):
        LogChunk.objects.create(run=run, seq=seq, text=text)
    return run


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "9" * 30, "9" * 5000])
def test_the_log_tail_refuses_an_after_that_is_no_chunk_number(pages_as, bob, run, after):
    response = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/log/", {"after": after})
    assert response.status_code == 400
    assert "after must be the number of a log chunk" in response.content.decode()


def test_the_log_tail_takes_a_chunk_number_or_nothing(pages_as, bob, run):
    pages = pages_as(bob)
    tail = pages.get(f"/p/alpha/pipelines/{run.pk}/log/", {"after": "2"}).content.decode()
    assert "three" in tail and "two" not in tail
    assert pages.get(f"/p/alpha/pipelines/{run.pk}/log/", {"after": ""}).status_code == 200


def test_the_logs_api_reads_from_a_chunk_on_and_refuses_what_is_no_chunk_number(api_as, bob, run):
    api = api_as(bob)
    url = f"/api/v1/projects/alpha/pipelines/{run.pk}/logs"
    response = api.get(url, {"after": "1"})
    assert response.status_code == 200
    assert response.content.decode() == "two\nthree\n"
    assert response["X-Log-Last-Chunk"] == "3"  # the next read asks for after=3
    assert api.get(url).content.decode() == "one\ntwo\nthree\n"
    for after in ("abc", "-1", "9" * 30):
        response = api.get(url, {"after": after})
        assert response.status_code == 422, (after, response.content)
        assert response.json()["errors"]["after"], response.json()


@pytest.mark.parametrize(
    "part",
    [
        "é" * 128,  # 128 characters, 256 bytes in UTF-8: too long for any file system
        "a" * 256,
    ],
)
def test_a_path_part_over_255_bytes_is_refused_and_nothing_is_stored(api_as, bob, part):
    api = api_as(bob)
    datasets = "/api/v1/projects/alpha/datasets"
    assert api.post_json(datasets, {"name": "invoices"}).status_code == 201
    response = api.put(
        f"{datasets}/invoices/files/train/{part}/a.csv",
        b"x",
        content_type="application/octet-stream",
    )
    assert response.status_code == 400, response.content
    assert "longer than 255 bytes" in response.json()["detail"]
    assert Blob.objects.count() == 0


def test_path_parts_are_measured_in_utf8_bytes():
    assert clean_path("a" * 255) == "a" * 255
    assert clean_path("é" * 127 + "a") == "é" * 127 + "a"  # 255 bytes
    with pytest.raises(ValidationError) as refused:
        clean_path("ok/" + "é" * 128 + "/x.csv", field="files")
    (message,) = refused.value.message_dict["files"]
    assert "'" + "é" * 8 in message and "longer than 255 bytes (256)" in message


def test_a_nul_character_in_a_name_is_refused_on_every_database(api_as, bob, run):
    """PostgreSQL can't even look up text with a NUL: the API says so, never a 500."""
    api = api_as(bob)
    payload = {"type": "train", "package": "clas\x00sifier", "version": "1.0", "dataset": "in\x00"}
    response = api.post_json("/api/v1/projects/alpha/pipelines", payload)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "package": ["This contains a NUL character."],
        "dataset": ["This contains a NUL character."],
    }
    for path in ("packages/a%00b", "datasets/a%00b", "pipelines/compare?ids=1%00"):
        response = api.get(f"/api/v1/projects/alpha/{path}")
        assert response.status_code in (400, 404, 422), (path, response.content)
