"""Version aliases on the create form and on a recurring pipeline's Edit form, through the test
client (no workers: runs stay queued)."""

import pytest

from packages.aliases import alias_set
from packages.models import Package
from packages.services import package_version_upload
from pipelines.models import PipelineRun, Schedule
from tests.conftest import classifier_and_invoices, upload

pytestmark = pytest.mark.django_db(transaction=True)
HTMX = {"HX-Request": "true"}
FORM = {
    "type": "train",
    "package": "classifier",
    "dataset": "invoices",
    "param_name": ["artifacts_directory"],
    "param_value": ["artifacts"],
}
CHAMPION = '<option value="champion" selected>champion → 1.0</option>'


@pytest.fixture
def bobs(pages_as, bob, project):
    """classifier 1.0 and 1.1, its alias champion → 1.0."""
    classifier_and_invoices(project, bob)
    package = Package.objects.get(name="classifier")
    package_version_upload(package=package, user=bob, file=upload())
    alias_set(user=bob, package=package, name="champion", version="1.0")
    return pages_as(bob)


@pytest.mark.usefixtures("runs_stay_here")
def test_the_form_offers_aliases_and_runs_the_version_one_points_at(bobs):
    offered = bobs.get("/p/alpha/pipelines/new/", {"type": "train", "package": "classifier"})
    assert '<option value="champion" >champion → 1.0</option>' in offered.content.decode()
    chosen = bobs.get("/p/alpha/pipelines/new/", {**FORM, "alias": "champion"}, headers=HTMX)
    partial = chosen.content.decode()
    assert CHAMPION in partial
    assert '<select name="major" disabled' in partial  # the numbers show 1.0, not sent
    assert '<option value="0" selected>0</option>' in partial
    response = bobs.post("/p/alpha/pipelines/new/", {**FORM, "alias": "champion"})
    assert response.status_code == 302
    assert PipelineRun.objects.get().version.number == "1.0"


def test_an_alias_of_another_package_is_dropped_when_the_package_changes(bobs):
    page = bobs.get(
        "/p/alpha/pipelines/new/", {**FORM, "package": "", "alias": "champion", "alias_for": "x"}
    ).content.decode()
    assert 'name="alias"' not in page


def test_an_unknown_alias_is_refused_at_the_version_field(bobs):
    response = bobs.post("/p/alpha/pipelines/new/", {**FORM, "alias": "stagin"})
    assert response.status_code == 400
    assert "no version &#x27;stagin&#x27;, nor an alias so named" in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_editing_a_recurring_pipeline_made_with_an_alias_keeps_the_alias(bobs):
    recurring = {**FORM, "alias": "champion", "when": "recurring", "every": "1", "unit": "days"}
    assert bobs.post("/p/alpha/pipelines/new/", recurring).status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.inputs["version"] == "champion"
    edit = bobs.get(f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/").content.decode()
    assert CHAMPION in edit
    # what the browser sends back: the alias, not the disabled numbers
    saved = bobs.post(
        f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/",
        {**recurring, "alias_for": "classifier", "name": "renamed"},
    )
    assert saved.status_code == 302
    schedule.refresh_from_db()
    assert schedule.name == "renamed" and schedule.inputs["version"] == "champion"


def test_the_edit_form_keeps_an_alias_no_longer_set_and_says_so(bobs, bob):
    schedule_inputs = {"type": "train", "package": "classifier", "version": "staging"}
    schedule = Schedule.objects.create(
        project_id=Package.objects.get().project_id,
        name="old",
        created_by=bob,
        inputs={**schedule_inputs, "dataset": "invoices"},
        every=1,
        unit="days",
        timezone="UTC",
        starts_at="2030-01-01T00:00Z",
    )
    edit = bobs.get(f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/").content.decode()
    assert '<option value="staging" selected>staging (not set on this package)</option>' in edit
