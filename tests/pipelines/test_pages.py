"""The pipeline pages through the test client; runs executed by the runner itself (no Redis)."""

import io
import re
import zipfile
from zoneinfo import ZoneInfo

import pytest
from django.utils.html import strip_tags

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.runner import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import classifier_run, upload
from tests.factories import package_zip

HTMX = {"HX-Request": "true"}
# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

TRAIN = """\
import os
from pathlib import Path


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        out = Path(os.environ["artifacts_directory"])
        (out / "plots").mkdir(parents=True)
        (out / "metrics.csv").write_text("epoch,loss\\n1,0.5\\n2,0.25\\n")
        (out / "report.json").write_text('{"accuracy": 0.93}')
        (out / "plots" / "loss.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
        print("epoch 1 loss 0.5")

    def evaluate(self, evaluation_directory):
        return 0.93

    def save(self):
        Path("model.bin").write_bytes(b"weights")
"""


@pytest.fixture
def bobs(pages_as, bob, project):
    package_create(
        project=project,
        user=bob,
        name="classifier",
        file=upload(content=package_zip(**{"train.py": TRAIN})),
    )
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(dataset=dataset, path="train/a.csv", fileobj=io.BytesIO(b"1,2"))
    dataset_file_put(dataset=dataset, path="train/deep/b.csv", fileobj=io.BytesIO(b"3"))
    return pages_as(bob)


def queued_run(project, bob, **fields):
    return classifier_run(project, bob, **fields)


def finished_run(project, bob, **fields):
    run = queued_run(project, bob, **fields)
    run_pipeline(run)
    run.refresh_from_db()
    return run


def test_the_form_offers_packages_versions_datasets_and_folders(bobs):
    page = bobs.get("/p/alpha/pipelines/new/").content.decode()
    assert "classifier" in page and "invoices" in page
    assert 'name="param_name" value="artifacts_directory"' in page
    assert 'name="param_value" value="false"' in page
    response = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "classifier",
            "dataset": "invoices",
            "param_name": ["artifacts_directory"],
            "param_value": ["artifacts"],
        },
        headers=HTMX,
    )
    partial = response.content.decode()
    assert "<html" not in partial
    assert '<option value="1" selected>1</option>' in partial  # major
    assert '<option value="0" selected>0</option>' in partial  # minor
    assert '<option value="train/deep" >train/deep/</option>' in partial.replace("  ", " ")


def test_parameter_rows_are_added_and_removed_in_place(bobs):
    base = {"type": "train", "param_name": ["a", "b"], "param_value": ["1", "2"]}
    added = bobs.get("/p/alpha/pipelines/new/", {**base, "add_param": "1"}, headers=HTMX)
    assert added.content.decode().count('name="param_name"') == 3
    removed = bobs.get("/p/alpha/pipelines/new/", {**base, "remove_param": "0"}, headers=HTMX)
    page = removed.content.decode()
    assert page.count('name="param_name"') == 1
    assert 'value="b"' in page and 'value="a"' not in page


def test_it_creates_a_run_through_the_form(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "classifier",
            "major": "1",
            "minor": "0",
            "dataset": "invoices",
            "dataset_folder": "train",
            "param_name": ["artifacts_directory", "save_training_data", "epochs"],
            "param_value": ["artifacts", "true", "5"],
        },
    )
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/p/alpha/pipelines/{run.pk}/"
    assert run.parameters["epochs"] == "5"
    assert run.parameters["save_training_data"] == "true"
    assert run.dataset_folder == "train"


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"param_name": ["", "x"], "param_value": ["orphan", "1"]},
            "Row 1 has a value but no name",
        ),
        ({"param_name": ["x", "x"], "param_value": ["1", "2"]}, "&#x27;x&#x27; is given twice"),
        ({"param_name": ["bad name"], "param_value": ["1"]}, "not a valid variable name"),
        ({"dataset": ""}, "Choose the input dataset"),
        ({"dataset_folder": "nope"}, "has no folder"),
        ({"package": ""}, "Choose a package"),
    ],
)
def test_the_form_shows_what_is_wrong_and_stores_nothing(bobs, fields, message):
    data = {
        "type": "train",
        "package": "classifier",
        "major": "1",
        "minor": "0",
        "dataset": "invoices",
        **fields,
    }
    response = bobs.post("/p/alpha/pipelines/new/", data, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<html" not in response.content.decode()
    assert not PipelineRun.objects.exists()


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
    assert inline["Content-Security-Policy"] == "sandbox"
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


def test_run_again_opens_the_form_pre_filled(bobs, project, bob):
    run = finished_run(project, bob, dataset_folder="train", parameters={"epochs": "7"})
    page = bobs.get("/p/alpha/pipelines/new/", {"from_run": run.pk}).content.decode()
    assert 'value="epochs"' in page and 'value="7"' in page
    assert '<option value="train" selected>train/</option>' in page


def test_the_list_filters_and_polls_only_while_something_is_unfinished(bobs, project, bob):
    done = finished_run(project, bob)
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert f"#{done.pk}" in page and 'hx-trigger="every 1s"' not in page
    waiting = queued_run(project, bob)
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert 'hx-trigger="every 1s"' in page
    filtered = bobs.get("/p/alpha/pipelines/", {"status": "queued"}, headers=HTMX)
    text = filtered.content.decode()
    assert f"#{waiting.pk}" in text and f"#{done.pk}<" not in text
    none = bobs.get("/p/alpha/pipelines/", {"status": "killed"}).content.decode()
    assert "No runs match these filters" in none


def test_the_list_stays_fast_with_10000_runs(bobs, project, bob, django_assert_max_num_queries):
    template = queued_run(project, bob)
    fields = {
        f.attname: getattr(template, f.attname)
        for f in PipelineRun._meta.concrete_fields
        if f.attname != "id"
    }
    PipelineRun.objects.bulk_create(
        [PipelineRun(**{**fields, "status": "successful"}) for _ in range(9_999)], batch_size=2000
    )
    with django_assert_max_num_queries(12):
        page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert "Page 1 of 200" in page
    assert page.count('class="badge') >= 50
    with django_assert_max_num_queries(12):
        bobs.get("/p/alpha/pipelines/", {"page": "150", "package": "classifier"})


def test_a_version_page_offers_train_with_the_form_pre_filled(bobs):
    page = bobs.get("/p/alpha/packages/classifier/1.0/").content.decode()
    assert "?type=train&package=classifier&major=1&minor=0" in page
    form = bobs.get(
        "/p/alpha/pipelines/new/",
        {"type": "train", "package": "classifier", "major": "1", "minor": "0"},
    )
    assert form.status_code == 200
    assert '<option value="classifier" selected>classifier</option>' in form.content.decode()


def test_logs_carry_the_time_of_each_line_and_the_timeline_shows_where_time_went(
    bobs, project, bob
):
    import re

    run = finished_run(project, bob)
    log = bobs.get(f"/p/alpha/pipelines/{run.pk}/log/download/").content.decode()
    lines = log.splitlines()
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{3} ", line) for line in lines), lines
    assert any(line.endswith("epoch 1 loss 0.5") for line in lines)
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    for label in (
        "Queued",
        "Python environment",
        "Package and data in place",
        "train()",
        "save()",
        "Outputs stored",
        "your code",
    ):
        assert label in page, label


def test_the_log_tail_keeps_newlines_at_the_start_of_a_piece(bobs, project, bob):
    from pipelines.models import LogChunk

    run = finished_run(project, bob)
    last = LogChunk.objects.filter(run=run).order_by("-seq").first().seq
    LogChunk.objects.create(run=run, seq=last + 1, text="\nafter a newline")
    tail = bobs.get(f"/p/alpha/pipelines/{run.pk}/log/", {"after": last}).content.decode()
    # a <pre> would swallow that first newline in the browser
    assert '<span hx-swap-oob="beforeend:#log-text">\nafter a newline</span>' in tail


def test_a_log_is_cut_at_its_limit_with_a_note(bobs, project, bob, settings):
    from pipelines.logs import RunLog, run_log_text

    run = finished_run(project, bob)
    settings.PIPELINE_LOG_MAX_CHARS = 2000
    log = RunLog(run)
    log.size = 0
    for index in range(500):
        log.write(f"line {index}\n")
    log.flush()
    text, _ = run_log_text(run)
    assert "the log was cut here: it reached its limit of 2,000 characters" in text
    assert "line 499" not in text


def test_the_log_cap_keeps_the_platforms_final_lines(bobs, project, bob, settings):
    """Cut early, the log still says how the run ended."""
    from pipelines.logs import run_log_text

    settings.PIPELINE_LOG_MAX_CHARS = 100
    run = finished_run(project, bob)
    assert run.status == PipelineRun.SUCCESSFUL
    text, _ = run_log_text(run)
    assert "the log was cut here: it reached its limit of 100 characters" in text
    assert "epoch 1 loss 0.5" not in text  # the package's output past the cap is dropped
    last_lines = [line.split(" ", 1)[1] for line in text.splitlines()[-2:]]
    assert last_lines == ["[aicenter] new version classifier 1.1", "[aicenter] Successful"]


def test_a_long_log_is_shown_by_its_end(bobs, project, bob):
    from pipelines.logs import run_log_tail
    from pipelines.models import LogChunk

    run = finished_run(project, bob)
    first = LogChunk.objects.filter(run=run).order_by("-seq").first().seq
    LogChunk.objects.bulk_create(
        LogChunk(run=run, seq=first + i, text=f"line {i}\n" * 100) for i in range(1, 301)
    )
    text, last, cut = run_log_tail(run, max_chars=5000)
    assert cut and last == first + 300
    assert text.endswith("line 300\n") and text.startswith("line ")
    assert len(text) <= 5000
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "The log is long: showing its end." in page


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


def test_the_form_shows_every_problem_at_once_and_a_negative_time_limit_must_be_positive(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "",
            "dataset": "",
            "time_limit": "-5",
            "param_name": ["bad name"],
            "param_value": ["1"],
            "when": "at",
            "at": "",
        },
        headers=HTMX,
    )
    assert response.status_code == 400
    page = response.content.decode()
    for message in (
        "The time limit must be positive",
        "Choose a package",
        "Choose the input dataset",
        "not a valid variable name",
        "Choose the date and time",
    ):
        assert message in page, message
    assert not PipelineRun.objects.exists()


def param_rows(page):
    names = re.findall(r'name="param_name" value="([^"]*)"', page)
    values = re.findall(r'name="param_value" value="([^"]*)"', page)
    return dict(zip(names, values, strict=True))


def test_the_evaluation_form_pre_fills_save_test_data(bobs, project, bob):
    page = bobs.get("/p/alpha/pipelines/new/", {"type": "evaluate"}).content.decode()
    assert param_rows(page) == {"artifacts_directory": "artifacts", "save_test_data": "false"}
    full = bobs.get("/p/alpha/pipelines/new/", {"type": "full"}).content.decode()
    assert param_rows(full) == {
        "artifacts_directory": "artifacts",
        "save_training_data": "false",
        "save_test_data": "false",
    }
    # the form says where the evaluation dataset and process_data's test split go
    text = " ".join(strip_tags(full).split())
    assert "placed at test_data_directory" in text
    assert "process_data must not write there" in text
    # switched in place from a training form: the rows follow the type, the user's own stay
    switched = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "evaluate",
            "params_for": "train",
            "param_name": ["artifacts_directory", "save_training_data", "epochs"],
            "param_value": ["artifacts", "false", "5"],
        },
        headers=HTMX,
    ).content.decode()
    assert param_rows(switched) == {
        "artifacts_directory": "artifacts",
        "epochs": "5",
        "save_test_data": "false",
    }
    # a row the user removed stays removed while the type is the same
    removed = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "evaluate",
            "params_for": "evaluate",
            "param_name": ["artifacts_directory", "save_test_data"],
            "param_value": ["artifacts", "false"],
            "remove_param": "1",
        },
        headers=HTMX,
    ).content.decode()
    assert param_rows(removed) == {"artifacts_directory": "artifacts"}
    run = pipeline_run_create(
        project=project,
        user=bob,
        type="evaluate",
        package="classifier",
        version="1.0",
        evaluation_dataset="invoices",
    )
    again = bobs.get("/p/alpha/pipelines/new/", {"from_run": run.pk}).content.decode()
    assert param_rows(again) == {"artifacts_directory": "artifacts", "save_test_data": "false"}
