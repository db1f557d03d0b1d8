"""ML Logs of packages: uploads through the page and the API write their event with the right
actor; a refused upload is logged with its errors and nothing else is stored; a change that is
rolled back leaves no event."""

import pytest
from django.db import transaction

from core.models import Event
from packages.models import Package, PackageVersion
from packages.services import package_create
from tests.conftest import stored_files, upload
from tests.factories import package_zip

pytestmark = pytest.mark.django_db
API = "/api/v1/projects/alpha"
NO_MAIN = "import os\n\nclass Trainer:\n    pass\n"


def logged(**filters):
    """The package events, oldest first, as (action, actor, object type, key, data)."""
    events = Event.objects.filter(category="package", **filters).order_by("id")
    return [(e.action, e.actor_name, e.object_type, e.object_key, e.data) for e in events]


def test_it_logs_a_package_uploaded_on_the_page_as_its_user(pages_as, bob, project):
    response = pages_as(bob).post(
        "/p/alpha/packages/new/", {"name": "classifier", "file": upload(), "language": "3.11"}
    )
    assert response.status_code == 302, response.content

    assert logged() == [("uploaded", "bob", "package", "classifier", {"version": "1.0"})]
    event = Event.objects.get()
    assert event.actor == bob and event.project == project
    assert event.url == "/p/alpha/packages/classifier/"
    assert event.object_name == "classifier"
    assert event.message.startswith("Version 1.0: 3 files, ")


def test_it_logs_an_api_upload_as_the_tokens_user_and_a_new_major_as_validated(api_as, bob):
    api = api_as(bob)
    assert api.post(f"{API}/packages", {"name": "classifier", "file": upload()}).status_code == 201
    response = api.post(f"{API}/packages/classifier/versions", {"file": upload()})
    assert response.status_code == 201, response.content

    assert logged() == [
        ("uploaded", "bob", "package", "classifier", {"version": "1.0"}),
        ("validated", "bob", "version", "classifier 2.0", {"version": "2.0"}),
    ]
    validated = Event.objects.get(action="validated")
    assert validated.object_name == "classifier 2.0"
    assert validated.url == "/p/alpha/packages/classifier/2.0/"


def test_a_refused_upload_is_logged_with_its_errors_and_nothing_is_stored(api_as, bob):
    bad = upload(content=package_zip(**{"train.py": NO_MAIN, "requirements.txt": None}))
    response = api_as(bob).post(f"{API}/packages", {"name": "classifier", "file": bad})

    assert response.status_code == 400, response.content
    ((action, actor, kind, key, data),) = logged()
    assert (action, actor, kind, key) == ("refused", "bob", "package", "classifier")
    assert data == {
        "errors": {
            "file": [
                "requirements.txt is missing from the package root.",
                "train.py: there is no class Main.",
            ]
        }
    }
    # (the API client's own token is logged too, as a token event outside the project)
    refused = Event.objects.get(category="package")
    assert refused.message.startswith("Refused: requirements.txt is missing")
    assert not Package.objects.exists() and stored_files() == []


def test_a_refused_name_and_zip_are_both_in_the_event(api_as, bob):
    bad = upload(content=b"not a zip")
    response = api_as(bob).post(f"{API}/packages", {"name": "9 lives", "file": bad})

    assert response.status_code == 400
    (event,) = Event.objects.filter(category="package")
    assert event.action == "refused"
    assert set(event.data["errors"]) == {"name", "file"}
    assert "'9 lives' is not a valid name" in event.data["errors"]["name"][0]


def test_a_refused_new_major_is_logged_on_its_package_and_no_version_is_made(api_as, bob):
    api = api_as(bob)
    api.post(f"{API}/packages", {"name": "classifier", "file": upload()})
    bad = upload(content=package_zip(**{"main.py": "class Main:\n    pass\n"}))

    response = api.post(f"{API}/packages/classifier/versions", {"file": bad})

    assert response.status_code == 400
    assert logged(action="refused") == [
        (
            "refused",
            "bob",
            "package",
            "classifier",
            {
                "errors": {
                    "file": [
                        "main.py: class Main has no method __init__",
                        "main.py: class Main has no method predict",
                    ]
                }
            },
        )
    ]
    assert Event.objects.get(action="refused").url == "/p/alpha/packages/classifier/"
    assert list(PackageVersion.objects.values_list("major", flat=True)) == [1]


def test_deleting_a_version_then_the_package_is_logged(api_as, bob):
    api = api_as(bob)
    api.post(f"{API}/packages", {"name": "classifier", "file": upload()})
    api.post(f"{API}/packages/classifier/versions", {"file": upload()})

    assert api.delete(f"{API}/packages/classifier/versions/2.0").status_code == 204
    assert api.delete(f"{API}/packages/classifier").status_code == 204

    assert logged()[2:] == [
        ("version_deleted", "bob", "version", "classifier 2.0", {"version": "2.0"}),
        ("deleted", "bob", "package", "classifier", {}),
    ]
    assert [e.url for e in Event.objects.filter(action__contains="deleted")] == ["", ""]


def test_a_rolled_back_upload_leaves_no_event(project, bob):
    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), transaction.atomic():
        package_create(project=project, user=bob, name="classifier", file=upload())
        raise Interrupted

    assert not Event.objects.exists() and not Package.objects.exists()


def test_a_viewer_and_an_outsider_can_not_write_events(api_as, vera, charlie):
    for user in (vera, charlie):
        response = api_as(user).post(f"{API}/packages", {"name": "classifier", "file": upload()})
        assert response.status_code in (403, 404)
    assert not Event.objects.exclude(category="token").exists()  # but the clients' tokens
