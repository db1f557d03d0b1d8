"""A run's live log in Chromium: it opens at its last line and follows new output, unless the
user scrolled up to read."""

import pytest
from playwright.sync_api import expect

from pipelines.models import LogChunk
from pipelines.services import pipeline_run_create
from tests.conftest import classifier_and_invoices

pytestmark = [pytest.mark.browser]

AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 4"


@pytest.fixture
def running(alice, project, runs_stay_here):
    """A run that stays unfinished (nothing executes it), with a long log so far: the test
    appends to its log as a worker would."""
    classifier_and_invoices(project, alice)
    run = pipeline_run_create(
        project=project, user=alice, type="train", package="classifier", version="1.0",
        dataset="invoices",
    )  # fmt: skip
    LogChunk.objects.create(
        run=run, seq=1, text="".join(f"12:00:00.000 epoch {i}\n" for i in range(300))
    )
    return run


def _append(run, seq, line):
    LogChunk.objects.create(run=run, seq=seq, text=f"12:00:01.000 {line}\n")


def test_the_live_log_follows_new_output_unless_the_user_scrolled_up(alice_page, running):
    page = alice_page
    page.goto(f"/p/alpha/pipelines/{running.pk}/")
    log = page.locator("#log-text")
    assert log.evaluate("el => el.scrollHeight > 2 * el.clientHeight")  # it is long
    assert log.evaluate(AT_BOTTOM), "a long log opens at its last line"
    expect(log.get_by_text("epoch 299")).to_be_in_viewport()

    _append(running, 2, "epoch 300")
    expect(log).to_contain_text("epoch 300")
    page.wait_for_function(f"({AT_BOTTOM})(document.getElementById('log-text'))")

    log.evaluate("el => { el.scrollTop = 200; }")  # the user reads something earlier
    page.wait_for_timeout(100)
    _append(running, 3, "epoch 301")
    expect(log).to_contain_text("epoch 301")
    page.wait_for_timeout(300)
    assert log.evaluate("el => el.scrollTop") == 200, "the log jumped away from what they read"

    log.evaluate("el => { el.scrollTop = el.scrollHeight; }")  # back down: it follows again
    page.wait_for_timeout(100)
    _append(running, 4, "epoch 302")
    expect(log).to_contain_text("epoch 302")
    page.wait_for_function(f"({AT_BOTTOM})(document.getElementById('log-text'))")
    page.screenshot(path=_shot("run-live-log"), full_page=True)


def _shot(name):
    from django.conf import settings

    folder = settings.BASE_DIR / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"
