"""A package whose training writes an HTML report and Markdown notes that attack the page
showing them: scripts, event handlers, requests to AI Center's origin, raw HTML and a
javascript: link. Shared by the client test (test_pages_report_artifacts.py) and the browser
test (tests/e2e/test_report_artifacts_pages.py); the attack's requests all go to paths with
`pwned` in them, so a test sees any that left."""

from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.factories import package_zip

# A 1x1 red PNG: images given inline (data:) are the one thing a report may load.
RED_DOT = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8Dw"
    "HwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)

REPORT = f"""<!doctype html>
<html><head><title>Model report</title>
<style>h1 {{ color: rgb(200, 0, 0); }}</style>
<link rel="stylesheet" href="/pwned-by-stylesheet">
</head><body>
<h1>Model report</h1>
<p id="accuracy">accuracy 0.93</p>
<img id="dot" alt="dot" src="{RED_DOT}" width="20" height="20">
<img src="/pwned-by-image" onerror="alert('onerror ran')">
<script>
  alert("script ran");
  document.body.dataset.ran = "yes";
  fetch("/pwned-by-fetch");
  parent.document.title = "pwned";
</script>
<script src="/pwned-by-script.js"></script>
<iframe src="/pwned-by-frame"></iframe>
<form action="/pwned-by-form"><button id="send">Send</button></form>
</body></html>
"""

NOTES = """# Results

| metric | value |
|---|---|
| accuracy | **0.93** |

<script>alert("markdown script")</script>
<img src="x" onerror="alert('markdown onerror')">

[a link](javascript:alert(1)) and [the docs](https://example.com/docs)
"""

TRAIN = f"""\
import os
from pathlib import Path

REPORT = {REPORT!r}
NOTES = {NOTES!r}


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        out = Path(os.environ["artifacts_directory"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").write_text(REPORT)
        (out / "notes.md").write_text(NOTES)

    def evaluate(self, evaluation_directory):
        return 0.93

    def save(self):
        Path("model.bin").write_bytes(b"weights")
"""


def report_run(project, user):
    """A finished training run of the package `reporter` (made here) on `invoices`."""
    package_create(
        project=project,
        user=user,
        name="reporter",
        file=upload(content=package_zip(**{"train.py": TRAIN})),
    )
    run = pipeline_run_create(
        project=project,
        user=user,
        type="train",
        package="reporter",
        version="1.0",
        dataset="invoices",
    )
    run_pipeline(run)
    run.refresh_from_db()
    assert run.status == "successful", run.failure_reason
    return run
