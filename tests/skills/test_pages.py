"""The ML Skills pages through the test client, as a browser posts them (with and without
htmx): the list, the create form, a skill's page and its buttons, the version page's skills,
and the project setting that keeps call inputs. Try it, on a real skill host, is in
test_pages_try_it.py."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from core.models import Project
from packages.services import package_create, package_version_upload
from skills.models import Skill, SkillCall, SkillMinute
from skills.services import skill_create
from tests.conftest import upload

HTMX = {"HX-Request": "true"}
PAGES = "/p/alpha/skills"


@pytest.fixture
def bobs(pages_as, bob):
    return pages_as(bob)


@pytest.fixture
def echo_package(project, bob):
    """The package `echo` (1.0, the factory's Main.predict returns its input) and its 2.0."""
    package = package_create(project=project, user=bob, name="echo", file=upload())
    package_version_upload(package=package, user=bob, file=upload())
    return package


def make_skill(project, user, name="echo-skill", version="1.0", **fields):
    return skill_create(
        user=user, project=project, name=name, package="echo", version=version, **fields
    )


def text_of(response) -> str:
    return words(response.content.decode())


def words(html: str) -> str:
    """The text without tags, runs of spaces made one: what a person reads (entities kept)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_empty_list_says_what_to_do_next(bobs, pages_as, vera):
    page = bobs.get(f"{PAGES}/")
    assert page.status_code == 200
    assert "No ML Skills yet" in text_of(page)
    assert "Deploy a package version as a skill" in text_of(page)
    assert f'href="{PAGES}/new/"' in page.content.decode()
    viewers = pages_as(vera).get(f"{PAGES}/").content.decode()
    assert "Deploy a package version as a skill" in viewers
    assert f'href="{PAGES}/new/"' not in viewers
    assert 'href="/p/alpha/skills/"' in viewers  # in the side navigation


def test_the_list_shows_each_skill_in_a_constant_number_of_queries(
    bobs, project, bob, echo_package
):
    first = make_skill(project, bob, "a-skill")
    SkillMinute.objects.create(
        skill=first,
        minute=timezone.now().replace(second=0, microsecond=0),
        calls=3,
        errors=1,
        latencies=[0, 0, 0, 3],  # three calls in the bucket up to 5 ms
    )

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = bobs.get(f"{PAGES}/")
        assert response.status_code == 200
        return len(captured), response

    one, page = queries()
    text = text_of(page)
    assert "a-skill" in text and "echo" in text and "Deploying" in text
    assert "0 / 1" in text and "3 (1 failed)" in text and "≤ 5 ms" in text
    for number in range(19):
        make_skill(project, bob, f"skill-{number:02}", version="2.0", auto_update=True)
    twenty, page = queries()
    assert twenty == one, f"{one} queries for 1 skill, {twenty} for 20"
    assert text_of(page).count("Deploying") == 20
    assert 'hx-trigger="every 2s"' in page.content.decode()  # it polls while they deploy


def test_an_updating_skill_shows_both_versions(bobs, project, bob, echo_package):
    skill = make_skill(project, bob)
    one, two = echo_package.versions.order_by("major")
    Skill.objects.filter(pk=skill.pk).update(serving=one, version=two, status=Skill.UPDATING)
    text = text_of(bobs.get(f"{PAGES}/"))
    assert "1.0 → 2.0" in text and "Updating" in text


def test_the_form_creates_a_skill(bobs, echo_package):
    form = bobs.get(f"{PAGES}/new/").content.decode()
    assert '<option value="echo" selected>' in form
    assert re.search(r'<option value="2.0" selected>2.0\s+\(newest\)', form)
    response = bobs.post(
        f"{PAGES}/new/",
        {"name": "echo-skill", "package": "echo", "version": "1.0", "replicas": "2", "gpu": "on"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{PAGES}/echo-skill/"
    skill = Skill.objects.get(name="echo-skill")
    assert (skill.version.number, skill.replicas, skill.gpu, skill.auto_update) == (
        "1.0",
        2,
        True,
        False,
    )
    assert skill.created_by.username == "bob" and skill.status == Skill.DEPLOYING


def test_htmx_reloads_the_versions_when_the_package_changes(bobs, project, bob, echo_package):
    package_create(project=project, user=bob, name="other", file=upload())
    response = bobs.get(
        f"{PAGES}/new/",
        {"name": "typed", "package": "other", "version": "2.0", "replicas": "3"},
        headers=HTMX,
    )
    assert response.status_code == 200
    form = response.content.decode()
    assert form.lstrip().startswith('<section class="card form-card" id="skill-form">')
    assert '<option value="1.0" selected>' in form and 'value="2.0"' not in form
    assert 'value="typed"' in form and 'value="3"' in form  # what was typed stays
    back = bobs.get(
        f"{PAGES}/new/", {"package": "echo", "version": "1.0", "versions_of": "other"}, headers=HTMX
    ).content.decode()
    assert '<option value="2.0" selected>' in back  # another package's version: the newest
    linked = bobs.get(f"{PAGES}/new/", {"package": "echo", "version": "1.0"}).content.decode()
    assert '<option value="1.0" selected>' in linked  # as the version page's link asks
    created = bobs.post(
        f"{PAGES}/new/",
        {"name": "x", "package": "echo", "version": "2.0", "replicas": "1"},
        headers=HTMX,
    )
    assert created.status_code == 200 and created["HX-Redirect"] == f"{PAGES}/x/"


@pytest.mark.parametrize(
    "fields, field_message",
    [
        ({"name": ""}, "A name is required."),
        ({"name": "two words"}, "letters, digits, '-' or '_'"),
        ({"name": "taken"}, "A skill named 'taken' already exists"),
        ({"name": "x" * 101}, "A name is 1 to 100"),
        ({"package": ""}, "Choose a package."),
        ({"package": "nope"}, "No package named 'nope' in this project."),
        ({"version": "9.9"}, "The package has no version '9.9'."),
        ({"version": ""}, "Choose a version."),
        ({"replicas": "0"}, "Replicas must be from 1 to 16."),
        ({"replicas": "99"}, "Replicas must be from 1 to 16."),
        ({"replicas": "two"}, "Replicas must be a whole number."),
        ({"replicas": ""}, "How many replicas? 1 or more."),
    ],
)
def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(
    bobs, project, bob, echo_package, fields, field_message
):
    make_skill(project, bob, "taken")
    data = {"name": "new-skill", "package": "echo", "version": "1.0", "replicas": "1", **fields}
    for headers in ({}, HTMX):
        response = bobs.post(f"{PAGES}/new/", data, headers=headers)
        assert response.status_code == 400
        page = response.content.decode()
        assert escape(field_message) in page, page
        assert "The skill was not created" in page
        assert re.search(r'<ul class="field-errors"><li>', page)
    assert list(Skill.objects.values_list("name", flat=True)) == ["taken"]


def test_the_skill_page_shows_the_url_the_keys_prefix_and_a_curl_line(
    bobs, project, bob, echo_package
):
    skill = make_skill(project, bob)
    page = bobs.get(f"{PAGES}/echo-skill/")
    assert page.status_code == 200
    html = page.content.decode()
    url = "http://testserver/api/v1/projects/alpha/skills/echo-skill/predict"
    assert f'<code id="skill-url">{url}</code>' in html
    assert f'<code id="skill-key-prefix">{skill.api_key_prefix}…</code>' in html
    assert skill.api_key not in html and "shown once, when made" in html
    curl = (
        f'curl -X POST {url} -H "X-API-Key: $SKILL_KEY" '
        f'-H "Content-Type: application/json" -d \'{{"input": "hello"}}\''
    )
    assert escape(curl) in html
    assert html.count("data-copy=") == 2 and "js/skills.js" in html
    assert "<script>" not in html and " style=" not in html  # the CSP allows neither
    text = text_of(page)
    assert "Deploying" in text and "0 of 1 replica up" in text
    assert "Waiting for a skill host" in text  # none runs in this test
    status = bobs.get(f"{PAGES}/echo-skill/?part=status", headers=HTMX).content.decode()
    assert status.lstrip().startswith('<section id="skill-status"')
    assert 'hx-trigger="every 2s"' in status
    Skill.objects.filter(pk=skill.pk).update(status=Skill.AVAILABLE)
    status = bobs.get(f"{PAGES}/echo-skill/?part=status", headers=HTMX).content.decode()
    assert "Available" in status and "hx-trigger" not in status  # settled: polling stops


def test_a_file_skill_offers_a_file_input_and_a_curl_line_for_bytes(bobs, project, bob):
    package_create(project=project, user=bob, name="echo", file=upload(), input_type="file")
    make_skill(project, bob)
    html = bobs.get(f"{PAGES}/echo-skill/").content.decode()
    assert '<input type="file" name="file">' in html and 'name="input"' not in html
    assert 'hx-encoding="multipart/form-data"' in html
    assert "--data-binary @input.bin" in html


def test_recent_calls_show_inputs_only_when_the_project_keeps_them(
    bobs, project, bob, echo_package
):
    skill = make_skill(project, bob)
    now = timezone.now()
    for seconds, status in ((3, 200), (2, 422)):
        SkillCall.objects.create(
            skill=skill,
            time=now - timedelta(seconds=seconds),
            milliseconds=4.31,
            status=status,
            input=f'{{"invoice": {seconds}}}',
        )
    page = text_of(bobs.get(f"{PAGES}/echo-skill/"))
    assert "4.3 ms" in page and "422" in page
    assert escape('{"invoice": 3}') not in page and "Inputs are not kept" in page
    Project.objects.filter(pk=project.pk).update(keep_skill_inputs=True)
    page = text_of(bobs.get(f"{PAGES}/echo-skill/"))
    assert escape('{"invoice": 3}') in page and "Inputs are not kept" not in page


def test_it_updates_scales_and_turns_auto_update_on(bobs, project, bob, echo_package):
    skill = make_skill(project, bob)
    response = bobs.post(
        f"{PAGES}/echo-skill/change/", {"version": "2.0", "replicas": "3", "auto_update": "on"}
    )
    assert response.status_code == 302 and response["Location"] == f"{PAGES}/echo-skill/"
    skill.refresh_from_db()
    assert (skill.version.number, skill.replicas, skill.auto_update) == ("2.0", 3, True)
    refused = bobs.post(f"{PAGES}/echo-skill/change/", {"version": "7.0", "replicas": "0"})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "The package has no version &#x27;7.0&#x27;." in page
    assert "Replicas must be from 1 to 16." in page
    skill.refresh_from_db()
    assert (skill.version.number, skill.replicas) == ("2.0", 3)


def test_the_key_is_shown_once_after_create_and_after_rotate(
    bobs, pages_as, vera, project, bob, echo_package
):
    """Right after the skill is made (or its key rotated), its page shows the key once, with
    a copy button and a note; the next visit, and a Viewer's, show only its first characters."""
    data = {"name": "echo-skill", "package": "echo", "version": "1.0", "replicas": "1"}
    made = bobs.post(f"{PAGES}/new/", data, headers=HTMX)
    assert made["HX-Redirect"] == f"{PAGES}/echo-skill/"
    for rotate in (False, True):
        if rotate:
            assert bobs.post(f"{PAGES}/echo-skill/rotate-key/").status_code == 302
        skill = Skill.objects.get()
        page = bobs.get(f"{PAGES}/echo-skill/")
        html = page.content.decode()
        key = re.search(r'<code id="skill-key">(sk-[\w-]+)</code>', html)[1]
        assert skill.opens_with(key) and page["Cache-Control"] == "no-store"
        assert 'data-copy="#skill-key"' in html and "you won't see it again" in html
        assert escape(f'-H "X-API-Key: {key}"') in html  # the curl line, ready this once
        again = bobs.get(f"{PAGES}/echo-skill/").content.decode()
        assert key not in again and f"{skill.api_key_prefix}…" in again
        assert key not in pages_as(vera).get(f"{PAGES}/echo-skill/").content.decode()
        bobs.force_login(bob)  # pages_as(vera) logged the shared client in as her


def test_undeploy_deploy_rotate_and_delete(bobs, project, bob, echo_package):
    skill = make_skill(project, bob)
    key = skill.api_key_digest
    assert bobs.post(f"{PAGES}/echo-skill/undeploy/").status_code == 302
    skill.refresh_from_db()
    assert skill.status == Skill.UNDEPLOYED
    assert ">Deploy</button>" in bobs.get(f"{PAGES}/echo-skill/").content.decode()
    bobs.post(f"{PAGES}/echo-skill/deploy/")
    bobs.post(f"{PAGES}/echo-skill/rotate-key/")
    skill.refresh_from_db()
    assert skill.status == Skill.DEPLOYING and skill.api_key_digest != key
    assert bobs.post(f"{PAGES}/echo-skill/explode/").status_code == 404
    confirm = bobs.get(f"{PAGES}/echo-skill/delete/")
    assert "Delete the ML Skill echo-skill?" in text_of(confirm)
    assert Skill.objects.filter(pk=skill.pk).exists()  # a GET deletes nothing
    deleted = bobs.post(f"{PAGES}/echo-skill/delete/")
    assert deleted.status_code == 302 and deleted["Location"] == f"{PAGES}/"
    assert not Skill.objects.exists()
    assert bobs.get(f"{PAGES}/echo-skill/").status_code == 404


def test_a_viewer_sees_no_write_buttons_and_may_not_post(
    pages_as, vera, project, bob, echo_package
):
    skill = make_skill(project, bob)
    viewer = pages_as(vera)
    html = viewer.get(f"{PAGES}/echo-skill/").content.decode()
    assert skill.api_key not in html and "Try it" in html  # the key: never; calls: yes
    assert f"{skill.api_key_prefix}…" in html
    for word in ("Undeploy", "Rotate key", "Delete", "Apply", "/change/"):
        assert word not in html, word
    assert viewer.get(f"{PAGES}/new/").status_code == 403
    assert viewer.get(f"{PAGES}/echo-skill/delete/").status_code == 403
    for url, data in [
        (f"{PAGES}/new/", {"name": "mine", "package": "echo", "version": "1.0", "replicas": "1"}),
        (f"{PAGES}/echo-skill/change/", {"version": "2.0", "replicas": "1"}),
        (f"{PAGES}/echo-skill/undeploy/", {}),
        (f"{PAGES}/echo-skill/deploy/", {}),
        (f"{PAGES}/echo-skill/rotate-key/", {}),
        (f"{PAGES}/echo-skill/delete/", {}),
    ]:
        assert viewer.post(url, data).status_code == 403, url
    assert list(
        Skill.objects.values_list("name", "version__major", "api_key_digest", "status")
    ) == [("echo-skill", 1, skill.api_key_digest, Skill.DEPLOYING)]


def test_an_outsider_sees_nothing(pages_as, charlie, project, bob, echo_package):
    make_skill(project, bob)
    outsider = pages_as(charlie)
    for url in (f"{PAGES}/", f"{PAGES}/echo-skill/", f"{PAGES}/new/"):
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(f"{PAGES}/echo-skill/try/", {"input": "x"}).status_code == 404


def test_the_version_page_lists_the_skills_that_serve_it(bobs, project, bob, echo_package):
    make_skill(project, bob, "on-one")
    moving = make_skill(project, bob, "moving")
    one, two = echo_package.versions.order_by("major")
    Skill.objects.filter(pk=moving.pk).update(serving=one, version=two, status=Skill.UPDATING)
    page = bobs.get("/p/alpha/packages/echo/1.0/").content.decode()
    assert "ML Skills serving this version" in page
    assert f'href="{PAGES}/on-one/"' in page and f'href="{PAGES}/moving/"' in page
    page = bobs.get("/p/alpha/packages/echo/2.0/").content.decode()
    assert f'href="{PAGES}/moving/"' in page and f'href="{PAGES}/on-one/"' not in page
    assert f"{PAGES}/new/?package=echo&amp;version=2.0" in page  # Deploy as ML Skill


def test_the_settings_page_turns_keeping_inputs_on_and_off(pages_as, alice, bob, project):
    admin = pages_as(alice)
    Project.objects.filter(pk=project.pk).update(allow_network=True)
    page = admin.get("/p/alpha/settings/").content.decode()
    assert "Keep the inputs of ML Skill calls" in page and "Not kept" in page
    response = admin.post("/p/alpha/settings/", {"section": "skills", "keep_skill_inputs": "on"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.keep_skill_inputs is True and project.allow_network is True  # untouched
    assert "Inputs kept" in admin.get("/p/alpha/settings/").content.decode()
    admin.post("/p/alpha/settings/", {"section": "skills"})
    project.refresh_from_db()
    assert project.keep_skill_inputs is False and project.allow_network is True
    refused = pages_as(bob).post(
        "/p/alpha/settings/", {"section": "skills", "keep_skill_inputs": "on"}
    )
    assert refused.status_code == 403


def test_the_api_reads_and_changes_keeping_inputs(api_as, alice, project):
    api = api_as(alice)
    assert api.get("/api/v1/projects/alpha").json()["keep_skill_inputs"] is False
    answer = api.patch(
        "/api/v1/projects/alpha",
        {"allow_network": False, "keep_skill_inputs": True},
        content_type="application/json",
    )
    assert answer.status_code == 200 and answer.json()["keep_skill_inputs"] is True
    unchanged = api.patch(
        "/api/v1/projects/alpha", {"allow_network": True}, content_type="application/json"
    )
    assert unchanged.json()["keep_skill_inputs"] is True and unchanged.json()["allow_network"]
