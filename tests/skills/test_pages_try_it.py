"""Try it on a skill's page: one call through skills.services.skill_predict, as the API makes
it, answered by a real skill host's sandboxed replica; the output, the status and the time are
swapped into the page, and the curl line then sends the same input."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from packages.services import package_create
from skills.services import skill_create
from tests.conftest import upload, wait_until
from tests.skills.test_pages import HTMX, PAGES, words

CREATE = {"package": "echo", "version": "1.0", "replicas": "1"}


def wait_available(client, name):
    def available():
        part = client.get(f"{PAGES}/{name}/?part=status", headers=HTMX).content.decode()
        return 'data-status="available"' in part and "1 of 1 replica up" in words(part)

    try:
        wait_until(available, 60, f"the skill {name} never became available")
    except AssertionError:
        print(words(client.get(f"{PAGES}/{name}/?part=status", headers=HTMX).content.decode()))
        raise


@pytest.mark.django_db(transaction=True)
def test_try_it_calls_the_skill_through_a_real_skill_host(
    pages_as, bob, vera, skill_host, echo, sandboxed
):
    echo()
    echo(name="file_echo", input_type="file")
    bobs = pages_as(bob)
    assert bobs.post(f"{PAGES}/new/", {**CREATE, "name": "echo-skill"}).status_code == 302
    # one at a time: two replicas needing a fresh environment at once can deadlock on its lock
    wait_available(bobs, "echo-skill")
    created = bobs.post(f"{PAGES}/new/", {**CREATE, "name": "files", "package": "file_echo"})
    assert created.status_code == 302

    response = bobs.post(f"{PAGES}/echo-skill/try/", {"input": '{"invoice": 12}'}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-status="200"' in html and "200 OK" in html
    assert escape('{"invoice": 12}') in html and "predict returned a str" in html
    assert re.search(r"in \d+\.\d ms", html)
    assert 'id="skill-curl" class="copy-block" hx-swap-oob="true"' in html
    assert escape("-d '{\"invoice\": 12}'") in html  # the curl line now sends this input
    whoami = bobs.post(f"{PAGES}/echo-skill/try/", {"input": "whoami"}, headers=HTMX)
    assert "predict returned JSON" in whoami.content.decode()
    assert re.search(r"&quot;uid&quot;: \d+", whoami.content.decode())  # indented JSON
    raised = bobs.post(f"{PAGES}/echo-skill/try/", {"input": "raise"}, headers=HTMX)
    assert "422 Unprocessable" in raised.content.decode()
    assert "ValueError: no such invoice: raise" in raised.content.decode()
    # without JavaScript: the whole page, with the result and the input kept in the box
    viewer = pages_as(vera).post(f"{PAGES}/echo-skill/try/", {"input": "it's me"})
    assert viewer.status_code == 200
    page = viewer.content.decode()
    assert "200 OK" in page and escape("it's me") in page and "<textarea" in page
    assert escape("-d 'it'\"'\"'s me'") in page  # quoted for the shell

    wait_available(bobs, "files")
    sent = SimpleUploadedFile("invoice.txt", b"invoice 12, paid")
    answer = bobs.post(f"{PAGES}/files/try/", {"file": sent}, headers=HTMX).content.decode()
    assert "200 OK" in answer and "invoice 12, paid" in answer
    assert "predict returned bytes" in answer


def test_an_undeployed_skill_answers_503_in_the_box(pages_as, bob, project):
    package_create(project=project, user=bob, name="echo", file=upload())
    skill_create(user=bob, project=project, name="idle", package="echo", version="1.0")
    bobs = pages_as(bob)
    bobs.post(f"{PAGES}/idle/undeploy/")
    answer = bobs.post(f"{PAGES}/idle/try/", {"input": "hi"}, headers=HTMX).content.decode()
    assert (
        "503 Service Unavailable" in answer
        and "Skill idle is undeployed: deploy it to call it." in answer
    )
