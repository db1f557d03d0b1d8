"""A run's details page through the test client: its inputs and outputs, its artifacts, the
version it trained, its traceback and its times.

Runs are executed by the runner itself (no Redis); the helpers are in tests/pipelines/pages.py,
the bobs fixture in tests/pipelines/conftest.py."""

import io
import re
import zipfile
from zoneinfo import ZoneInfo

import pytest
from django.utils.html import strip_tags

from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.factories import package_zip
from tests.pipelines.pages import TRAIN, finished_run

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


def test_the_details_page_shows_inputs_outputs_and_logs(bobs, project, bob):
    run = finished_run(project, bob, parameters={"save_training_data": "true"})
    assert run.status == "successful", run.failure_reason
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    for text in (
        "Successful",
        "classifier 1.0",
        "classifier 1.1",
        "invoices",
        "epoch 1 loss 0.5",
        "Artifacts",
        "Dataset snapshot",
        "_results.json",
        "&quot;run_summary&quot;",
        "save_training_data",
        "bob",
    ):
        assert text in page, text
    assert "hx-trigger" not in page.split('id="run-status"')[1].split(">")[0]
    results = bobs.get(f"/p/alpha/pipelines/{run.pk}/results/")
    assert results.json()["run_summary"]["outputs"]["version"] == "1.1"


def test_artifacts_are_browsed_previewed_and_downloaded(bobs, project, bob):
    run = finished_run(project, bob)
    base = f"/p/alpha/pipelines/{run.pk}/artifacts/"
    page = bobs.get(base).content.decode()
    assert "metrics.csv" in page and "plots" in page
    csv = bobs.get(base, {"file": "metrics.csv"}).content.decode()
    assert "<th>epoch</th>" in csv and "<td>0.25</td>" in csv
    json_preview = bobs.get(base, {"file": "report.json"}).content.decode()
    assert "&quot;accuracy&quot;: 0.93" in json_preview
    image = bobs.get(base, {"path": "plots", "file": "plots/loss.png"}).content.decode()
    assert f'src="{base}files/plots/loss.png?inline=1"' in image
    inline = bobs.get(f"{base}files/plots/loss.png", {"inline": "1"})
    assert inline["Content-Security-Policy"].startswith("sandbox;")
    assert "attachment" not in inline.get("Content-Disposition", "")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(bobs.get(f"{base}zip/").streaming_content)))
    assert sorted(archive.namelist()) == ["metrics.csv", "plots/loss.png", "report.json"]
    assert bobs.get(f"/p/alpha/pipelines/{run.pk}/snapshot/").status_code == 404
    assert bobs.get(f"/p/alpha/pipelines/{run.pk}/nonsense/").status_code == 404


def test_the_trained_version_says_where_it_came_from(
    bobs, project, bob, django_capture_on_commit_callbacks
):
    run = finished_run(project, bob, dataset_folder="train")
    page = strip_tags(bobs.get("/p/alpha/packages/classifier/").content.decode())
    assert f"trained by pipeline {run.pk} from version 1.0 on dataset invoices/train" in page
    page = bobs.get("/p/alpha/packages/classifier/1.1/").content.decode()
    assert f'href="/p/alpha/pipelines/{run.pk}/"' in page
    with django_capture_on_commit_callbacks(execute=True):
        assert bobs.post(f"/p/alpha/pipelines/{run.pk}/delete/").status_code == 302
    page = strip_tags(bobs.get("/p/alpha/packages/classifier/1.1/").content.decode())
    assert f"trained by pipeline {run.pk} (deleted) from version 1.0" in page
    assert "model.bin" in page


def test_a_failed_run_shows_its_traceback_under_the_reason_and_where_it_failed(bobs, project, bob):
    failing = TRAIN.replace(
        '        print("epoch 1 loss 0.5")\n',
        '        print("epoch 1 loss 0.5")\n'
        '        raise ValueError("no invoices in " + data_directory)\n',
    )
    package_create(
        project=project,
        user=bob,
        name="broken",
        file=upload(content=package_zip(**{"train.py": failing})),
    )
    run = pipeline_run_create(
        project=project, user=bob, type="train", package="broken", version="1.0", dataset="invoices"
    )
    run_pipeline(run)
    run.refresh_from_db()
    assert run.status == "failed" and run.failure_reason == "ValueError: no invoices in ./data"
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    alert = page.split('class="alert error failure"')[1].split("</div>")[0]
    traceback = strip_tags(alert.split('<pre class="code traceback">')[1].split("</pre>")[0])
    assert traceback == (
        "Traceback (most recent call last):\n"
        "  File &quot;train.py&quot;, line 16, in train\n"
        "    raise ValueError(&quot;no invoices in &quot; + data_directory)\n"
        "ValueError: no invoices in ./data"
    )
    assert "run-" not in strip_tags(alert)  # no workspace path, no runner frame (<string>)
    # the log keeps it all, word for word
    assert "&lt;string&gt;" in page.split('id="log-text"')[1]
    # _results.json is there, collapsed, below
    assert '<details class="results">' in page
    assert page.index("traceback") < page.index('<details class="results">')
    failed_rows = re.findall(r'<tr class="phase-code failed"><td>([^<]*)', page)
    assert failed_rows == ["train() "]


def test_times_show_their_zone_and_their_date_when_not_today(bobs, project, bob):
    from datetime import timedelta

    from django.utils import timezone

    at = (timezone.now() + timedelta(days=30)).astimezone(ZoneInfo("Europe/Paris"))
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "classifier",
            "major": "1",
            "minor": "0",
            "dataset": "invoices",
            "when": "at",
            "at": f"{at:%Y-%m-%dT%H:%M}",
            "timezone": "Europe/Paris",
        },
    )
    assert response.status_code == 302
    scheduled = PipelineRun.objects.get()
    assert (scheduled.status, scheduled.timezone) == ("scheduled", "Europe/Paris")
    page = strip_tags(bobs.get(f"/p/alpha/pipelines/{scheduled.pk}/").content.decode())
    in_utc = scheduled.scheduled_for.astimezone(ZoneInfo("UTC"))
    assert f"{at:%b} {at.day}, {at:%Y %H:%M}:00 Europe/Paris" in page  # as it was given
    assert f"({in_utc:%b} {in_utc.day}, {in_utc:%Y %H:%M}:00 UTC)" in page
    assert f"Scheduled for {at:%Y-%m-%d %H:%M}:00 Europe/Paris" in page  # the status line

    run = finished_run(project, bob)
    page = strip_tags(bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode())
    started = timezone.localtime(run.started_at)
    assert f"Started{started:%H:%M:%S} UTC" in page  # today: the time and its zone
    yesterday = run.started_at - timedelta(days=1)
    PipelineRun.objects.filter(pk=run.pk).update(
        started_at=yesterday, finished_at=yesterday + timedelta(seconds=5)
    )
    page = strip_tags(bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode())
    for label, moment in (("Started", yesterday), ("Finished", yesterday + timedelta(seconds=5))):
        assert f"{label}{moment:%b} {moment.day}, {moment:%Y %H:%M:%S} UTC" in page, label
