"""A run's log on its page through the test client: the time of each line, the tail, the cap.

Runs are executed by the runner itself (no Redis); the helpers are in tests/pipelines/pages.py,
the bobs fixture in tests/pipelines/conftest.py."""

import pytest

from pipelines.models import PipelineRun
from tests.pipelines.pages import finished_run

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


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
