"""A queued run says what it waits behind, with a real `rqworker` busy on the real Redis: the
runs queued ahead of it (linked), and what the queue's workers are busy with."""

import pytest
from playwright.sync_api import expect

from pipelines.models import PipelineRun
from pipelines.services import pipeline_run_kill
from tests.conftest import wait_for, wait_until
from tests.e2e.test_pipeline_control_pages import alpha, start  # noqa: F401 - a fixture
from tests.e2e.test_run_and_skill_page_details import shoot_at

pytestmark = [pytest.mark.browser]


def test_a_queued_run_says_what_it_waits_behind(alice_page, alice, project, alpha, worker):  # noqa: F811
    busy = start(project, alice)  # train() waits for the gate: the worker is busy with it
    wait_until(lambda: PipelineRun.objects.get(pk=busy.pk).status == "running", 60, "never ran")
    second, third = start(project, alice), start(project, alice)
    page = alice_page
    try:
        page.goto(f"/p/alpha/pipelines/{second.pk}/")
        place = page.locator("#run-status .queue-place")
        expect(place).to_contain_text("Next in line on the pipelines queue")
        expect(place).to_contain_text("busy with 1 run")
        page.goto(f"/p/alpha/pipelines/{third.pk}/")
        expect(place).to_contain_text(f"Behind #{second.pk} on the pipelines queue")
        expect(place).to_contain_text("busy with 1 run")
        shoot_at(page, "run-queued-behind")
        place.get_by_role("link", name=f"#{second.pk}").click()
        expect(page).to_have_url(f"/p/alpha/pipelines/{second.pk}/")
    finally:
        for run in (third, second, busy):
            pipeline_run_kill(run=PipelineRun.objects.get(pk=run.pk), user=alice)
        wait_for(PipelineRun.objects.get(pk=busy.pk), timeout=30)
