"""Metrics logged from package code through metrics_file: live while the run runs, complete
after, malformed lines skipped, a killed run keeps its points, the file can't be a way out;
downsampling and comparison through the API. Real worker, real Redis, real sandboxed runs."""

import json
import re
import time

import pytest
from django.conf import settings

from packages.models import Package
from packages.services import package_create
from pipelines.metrics import downsample, metrics_append, metrics_compact
from pipelines.models import MetricSeries, PipelineRun
from tests.conftest import upload, wait_for, wait_until
from tests.pipelines.training import API, start, train_py

pytestmark = pytest.mark.django_db(transaction=True)

# Logs `first` points of two curves, waits for the test's go-ahead file, then logs the rest.
CURVES = """
    def train(self, data_directory):
        def log(**point):
            with open(os.environ["metrics_file"], "a") as file:
                file.write(json.dumps(point) + "\\n")
        for step in range(10):
            if step == %(first)d:
                while not os.path.exists(%(go)r):
                    time.sleep(0.05)
            log(name="loss", value=1.0 / (step + 1))
            log(name="accuracy", value=step / 10, step=step * 100)
%(more)s
"""


def curves(go, first=5, more=""):
    return train_py().replace(
        "    def train(self, data_directory):",
        CURVES % {"first": first, "go": str(go), "more": more} + "\n    def _unused(self, d):",
    )


def metrics(api, run, query=""):
    response = api.get(f"{API}/pipelines/{run.pk}/metrics{query}")
    assert response.status_code == 200, response.content
    return response.json()["metrics"]


def log_of(run):
    return "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))


def test_two_curves_show_while_the_run_runs_and_are_complete_after(
    api, worker, package, dataset, tmp_path
):
    package(curves(tmp_path / "go")), dataset()
    run = start(api, parameters={"learning_rate": "0.1"})
    wait_until(
        lambda: len(metrics(api, run).get("loss", [])) == 5,
        timeout=30,
        message="the first five points never showed while the run ran",
    )
    run.refresh_from_db()
    assert run.status == PipelineRun.RUNNING
    (tmp_path / "go").touch()
    run = wait_for(run)
    assert run.status == "successful", run.failure_reason
    points = metrics(api, run)
    assert [p["step"] for p in points["loss"]] == list(range(10))  # numbered by the platform
    assert [p["value"] for p in points["loss"]] == [1.0 / (s + 1) for s in range(10)]
    assert [p["step"] for p in points["accuracy"]] == [s * 100 for s in range(10)]
    assert all(p["time"].endswith("+00:00") for p in points["loss"])
    assert metrics(api, run, "?names=accuracy").keys() == {"accuracy"}
    compared = api.get(f"{API}/pipelines/compare?ids={run.pk}").json()["runs"][0]
    assert compared["metrics"]["loss"] == {"last": 0.1, "min": 0.1, "max": 1.0, "steps": 10}
    assert compared["metrics"]["accuracy"]["max"] == 0.9


def test_the_guides_example_logs_as_the_guide_says(api, worker, package, dataset):
    guide = (settings.BASE_DIR / "docs" / "using.md").read_text()
    section = guide.split("**1. Append JSON lines to `metrics_file`")[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(example.splitlines()) <= 12  # "a 10-line example"
    (
        package(
            example
            + """
    def __init__(self):
        pass

    def fit_one_epoch(self, data_directory):
        self.epoch = getattr(self, "epoch", 0) + 1
        return 1 / self.epoch, self.epoch / 20

    def evaluate(self, evaluation_directory):
        return 0.5

    def save(self):
        pass
"""
        ),
        dataset(),
    )
    run = wait_for(start(api))
    assert run.status == "successful", run.failure_reason
    points = metrics(api, run)
    assert [(p["step"], p["value"]) for p in points["loss"]] == [
        (e, 1 / (e + 1)) for e in range(20)
    ]
    assert [(p["step"], p["value"]) for p in points["accuracy"]] == [
        (e, (e + 1) / 20)
        for e in range(20)  # no step given: numbered 0, 1, 2…
    ]


def test_malformed_lines_are_skipped_with_one_note_and_the_run_succeeds(
    api, worker, package, dataset, tmp_path
):
    garbage = """
        with open(os.environ["metrics_file"], "a") as file:
            file.write("not json\\n[1, 2]\\n" + json.dumps({"name": "x"}) + "\\n")
            file.write(json.dumps({"name": "loss", "value": "high"}) + "\\n")
            file.write(json.dumps({"name": "loss", "value": 1, "step": 1.5}) + "\\n")
            file.write("x" * 100000 + "\\n")
            file.write(json.dumps({"name": "loss", "value": 7, "step": 2**70}) + "\\n")
            file.write(json.dumps({"name": "loss", "value": float("nan")}) + "\\n")
            file.write(json.dumps({"name": "loss", "value": 3}))  # no newline at the end
"""
    (tmp_path / "go").touch()
    package(curves(tmp_path / "go", more=garbage)), dataset()
    run = wait_for(start(api))
    assert run.status == "successful", run.failure_reason
    loss = metrics(api, run)["loss"]
    assert [p["value"] for p in loss][-2:] == [None, 3.0]  # NaN is stored, shown as null
    assert len(loss) == 12
    assert log_of(run).count("skipped (and any other such line)") == 1
    assert MetricSeries.objects.get(run=run, name="loss").min == 0.1


def test_a_killed_run_keeps_what_it_logged(api, worker, package, dataset, tmp_path):
    package(curves(tmp_path / "never")), dataset()
    run = start(api)
    wait_until(lambda: len(metrics(api, run).get("loss", [])) == 5, timeout=30, message="none")
    assert api.post(f"{API}/pipelines/{run.pk}/kill").status_code == 200
    run = wait_for(run)
    assert run.status == "killed"
    time.sleep(1)  # the worker's last read, after the processes ended
    assert len(metrics(api, run)["loss"]) == 5


def test_metrics_file_as_a_link_to_a_server_file_reads_nothing_of_it(
    api, worker, package, dataset, tmp_path
):
    secret = settings.DATA_DIR / "metrics-secret.jsonl"  # a server file, as metrics lines
    secret.write_text(json.dumps({"name": "root-password-hunter2", "value": 1}) + "\n")
    link = f"""
    def train(self, data_directory):
        os.symlink({str(secret)!r}, os.environ["metrics_file"])

    def _unused(self, d):"""
    try:
        package(train_py().replace("    def train(self, data_directory):", link)), dataset()
        run = wait_for(start(api))
    finally:
        secret.unlink()
    assert run.status == "successful", run.failure_reason
    assert metrics(api, run) == {}
    assert not MetricSeries.objects.filter(name__contains="hunter2").exists()
    assert "a link, or not a file" in log_of(run)


def test_a_fifo_as_metrics_file_blocks_nothing(api, worker, package, dataset, tmp_path):
    fifo = """
        os.remove(os.environ["metrics_file"])
        os.mkfifo(os.environ["metrics_file"])
        time.sleep(2.5)
"""
    (tmp_path / "go").touch()
    package(curves(tmp_path / "go", more=fifo)), dataset()
    run = wait_for(start(api), timeout=30)
    assert run.status == "successful", run.failure_reason
    assert "not a regular file" in log_of(run)


def test_downsampling_keeps_the_first_and_last_point_within_n(api, project, bob):
    classifier = _package(project, bob)
    run = PipelineRun.objects.create(
        project=project, package=classifier, version=classifier.versions.get()
    )
    values = [((i * 7919) % 1000) / 10 for i in range(10_000)]
    metrics_append(run.pk, {"wave": [(None, v, 1.0 + i) for i, v in enumerate(values)]})
    for n in (2, 3, 100, 999):
        points = metrics(api, run, f"?max_points={n}")["wave"]
        assert len(points) <= n
        assert points[0]["step"] == 0 and points[-1]["step"] == 9_999
    kept = downsample(len(values), values, 100)
    assert max(values) in [values[i] for i in kept] and min(values) in [values[i] for i in kept]
    assert len(metrics(api, run)["wave"]) == 10_000
    for bad in ("?max_points=1", "?max_points=100001", "?max_points=many"):
        response = api.get(f"{API}/pipelines/{run.pk}/metrics{bad}")
        assert response.status_code in (400, 422), response.content
        assert "max_points" in response.content.decode()


def test_compare_puts_runs_with_different_parameters_side_by_side(api, project, bob):
    classifier = _package(project, bob)
    runs = [
        PipelineRun.objects.create(
            project=project,
            package=classifier,
            version=classifier.versions.get(),
            parameters={"learning_rate": rate},
            logged_params={"optimizer": "adam"},
            score=score,
        )
        for rate, score in (("0.1", 0.8), ("0.01", 0.9))
    ]
    for run, last in zip(runs, (0.3, 0.2), strict=True):
        metrics_append(run.pk, {"loss": [(None, 1.0, 1.0), (None, last, 2.0)]})
    body = api.get(f"{API}/pipelines/compare?ids={runs[1].pk},{runs[0].pk}").json()
    assert [r["id"] for r in body["runs"]] == [runs[1].pk, runs[0].pk]
    assert [r["parameters"]["learning_rate"] for r in body["runs"]] == ["0.01", "0.1"]
    assert body["runs"][0]["logged_params"] == {"optimizer": "adam"}
    assert body["runs"][0]["metrics"]["loss"] == {"last": 0.2, "min": 0.2, "max": 1.0, "steps": 2}
    assert body["runs"][1]["score"] == 0.8
    twice = api.get(f"{API}/pipelines/compare?ids={runs[0].pk},{runs[0].pk}").json()
    assert len(twice["runs"]) == 1
    for bad, status in (("", 422), ("1,x", 422), ("-1", 422), ("999999", 404)):
        response = api.get(f"{API}/pipelines/compare?ids={bad}")
        assert response.status_code == status, response.content
        assert json.loads(response.content)["detail"]
    many = ",".join(str(i) for i in range(1, 12))
    refused = api.get(f"{API}/pipelines/compare?ids={many}")
    assert refused.status_code == 422
    assert refused.json()["errors"]["ids"] == [
        "ids are 1 to 10 run numbers separated by commas, like 1,2,3."
    ]


def test_a_run_stored_in_many_small_batches_is_compacted_when_it_ends(api, project, bob):
    classifier = _package(project, bob)
    version = classifier.versions.get()
    trickled, batched = (
        PipelineRun.objects.create(project=project, package=classifier, version=version)
        for _ in range(2)
    )
    for step in range(1500):  # a point a second over 25 minutes: a batch each
        metrics_append(trickled.pk, {"loss": [(step, 1 / (step + 1), float(step))]})
    for first in range(0, 3000, 1200):  # a few large batches: chunks half full on average
        metrics_append(
            batched.pk, {"loss": [(s, 0.5, float(s)) for s in range(first, first + 1200)]}
        )
    before = metrics(api, trickled)["loss"]
    for run in (trickled, batched):
        metrics_compact(run.pk)
    series = MetricSeries.objects.get(run=trickled)
    assert (series.count, series.chunk_count) == (1500, 2)
    assert metrics(api, trickled)["loss"] == before
    assert MetricSeries.objects.get(run=batched).chunk_count == 6  # left as written


def test_metrics_file_is_the_platforms_name_not_a_parameter(api, package, dataset):
    package(), dataset()
    payload = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    for name in ("metrics_file", "MLFLOW_TRACKING_URI"):
        response = api.post_json(f"{API}/pipelines", {**payload, "parameters": {name: "/etc"}})
        assert response.status_code == 400
        assert "set by the platform" in response.content.decode()
    assert not PipelineRun.objects.exists()


def _package(project, user):
    found = Package.objects.filter(project=project, name="classifier").first()
    return found or package_create(project=project, user=user, name="classifier", file=upload())
