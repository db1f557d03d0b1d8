"""Who sees and does what: alice (project admin), bob (data scientist), vera (viewer) and
charlie (in no project) around project Alpha."""

import pytest

from core.models import Membership, Project
from datasets.models import Dataset
from tests.conftest import upload

API = "/api/v1/projects/alpha"


def test_charlie_sees_nothing_of_alpha(api_as, charlie, alice, pages_as):
    api = api_as(charlie)
    assert api.get("/api/v1/projects").json() == []
    for path in ("/datasets", "/packages"):
        response = api.get(API + path)
        assert response.status_code == 404
        assert response.json() == {"detail": "No project 'alpha'."}
    client = pages_as(charlie)
    assert b"Alpha" not in client.get("/").content
    assert client.get("/p/alpha/").status_code == 404
    assert client.get("/p/alpha/datasets/").status_code == 404


def test_members_see_their_project(api_as, bob):
    assert [p["slug"] for p in api_as(bob).get("/api/v1/projects").json()] == ["alpha"]


def test_superusers_see_every_project(api_as, django_user_model, project):
    Project.objects.create(slug="beta", name="Beta")  # nobody is a member of it
    root = django_user_model.objects.create_superuser("root", "", "pw")
    slugs = {p["slug"] for p in api_as(root).get("/api/v1/projects").json()}
    assert {"alpha", "beta"} <= slugs


def test_a_viewer_reads_but_cannot_create(api_as, vera, bob):
    api_as(bob).post_json(API + "/datasets", {"name": "d"})
    api = api_as(vera)
    assert api.get(API + "/datasets").status_code == 200
    response = api.post_json(API + "/datasets", {"name": "mine"})
    assert response.status_code == 403
    assert "Data scientist" in response.json()["detail"]
    response = api.post(API + "/packages", {"name": "p", "file": upload()})
    assert response.status_code == 403
    assert api.delete(API + "/datasets/d").status_code == 403
    assert Dataset.objects.count() == 1


def test_a_viewer_gets_a_clear_403_page(pages_as, vera):
    response = pages_as(vera).get("/p/alpha/packages/new/")
    assert response.status_code == 403
    assert b"You can&#x27;t do this" in response.content or b"You can't do this" in response.content
    assert b"Data scientist" in response.content


def test_a_data_scientist_cannot_manage_members(pages_as, bob, vera):
    response = pages_as(bob).post(
        "/p/alpha/members/", {"username": "vera", "role": Membership.ADMIN}
    )
    assert response.status_code == 403
    assert Membership.objects.get(user=vera).role == Membership.VIEWER


def test_a_project_admin_manages_members(pages_as, alice, charlie):
    client = pages_as(alice)
    response = client.post("/p/alpha/members/", {"username": "charlie", "role": "viewer"})
    assert response.status_code == 302
    assert Membership.objects.get(user=charlie).role == Membership.VIEWER
    response = client.post("/p/alpha/members/", {"username": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assert b"There is no user" in response.content
    client.post("/p/alpha/members/", {"remove": "charlie"})
    assert not Membership.objects.filter(user=charlie).exists()


def test_creating_a_project_makes_its_creator_admin(api_as, charlie):
    charlie.is_staff = True
    charlie.save()
    response = api_as(charlie).post_json("/api/v1/projects", {"name": "Charlie's lab"})
    assert response.status_code == 201
    project = Project.objects.get(slug=response.json()["slug"])
    assert Membership.objects.get(project=project).role == Membership.ADMIN


def test_only_staff_create_projects_unless_the_setting_says_everyone(
    api_as, charlie, pages_as, settings
):
    response = api_as(charlie).post_json("/api/v1/projects", {"name": "Charlie's lab"})
    assert response.status_code == 403
    assert "Only staff users create projects" in response.json()["detail"]
    page = pages_as(charlie)
    assert "Create project" not in page.get("/").content.decode()
    assert page.post("/", {"name": "Charlie's lab"}).status_code == 403
    assert not Project.objects.filter(name="Charlie's lab").exists()
    settings.PROJECT_CREATORS = "everyone"
    assert "Create project" in page.get("/").content.decode()
    assert api_as(charlie).post_json("/api/v1/projects", {"name": "Lab"}).status_code == 201


@pytest.mark.parametrize(
    "payload, status, message",
    [
        ({"name": ""}, 400, "A name is required"),
        ({"name": "日本"}, 400, "at least one letter (A-Z) or digit"),
        ({"name": "x" * 101}, 400, "too long"),
        ({"name": "Alpha"}, 409, "already exists"),
        ({"name": 5}, 422, "string"),
    ],
)
def test_a_bad_project_is_refused(api_as, charlie, project, payload, status, message):
    charlie.is_staff = True
    charlie.save()
    response = api_as(charlie).post_json("/api/v1/projects", payload)
    assert response.status_code == status
    assert message in response.json()["errors"]["name"][0]
    assert Project.objects.filter(slug="alpha").count() == 1


@pytest.mark.parametrize(
    "header,says",
    [
        ("", "create_api_token"),
        ("Bearer", "must read 'Bearer <token>'"),
        ("Bearer nope", "Unknown API token"),
        ("Basic abc", "must read 'Bearer <token>'"),
    ],
)
def test_the_api_needs_a_valid_token(client, header, says, db):
    response = client.get("/api/v1/projects", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert says in response.json()["detail"]


def test_pages_need_a_login(client, db):
    response = client.get("/p/default/datasets/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_api_token_command_prints_the_token_last(alice, client):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", "alice", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    response = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.mark.django_db(serialized_rollback=True)  # as migrations left it, whatever ran before
def test_the_default_project_exists():
    assert Project.objects.filter(slug="default").exists()


def test_a_project_admin_manages_members_through_the_api(api_as, alice, bob, charlie):
    api = api_as(alice)
    response = api.put(f"{API}/members/charlie", {"role": "viewer"}, "application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"username": "charlie", "role": "viewer"}
    api.put(f"{API}/members/charlie", {"role": "data_scientist"}, "application/json")
    assert api_as(charlie).get(f"{API}/members").json() == [
        {"username": "alice", "role": "admin"},
        {"username": "bob", "role": "data_scientist"},
        {"username": "charlie", "role": "data_scientist"},
    ]
    assert api.delete(f"{API}/members/charlie").status_code == 204
    assert not Membership.objects.filter(user=charlie).exists()
    assert api_as(charlie).get(f"{API}/members").status_code == 404


@pytest.mark.parametrize(
    "payload, message",
    [({"role": "owner"}, "Input should be"), ({}, "Field required"), ({"role": 1}, "Input")],
)
def test_a_bad_role_is_refused(api_as, alice, charlie, payload, message):
    response = api_as(alice).put(f"{API}/members/charlie", payload, "application/json")
    assert response.status_code == 422, response.content
    assert message in " ".join(response.json()["errors"]["role"])
    assert not Membership.objects.filter(user=charlie).exists()


def test_an_unknown_user_is_404(api_as, alice):
    response = api_as(alice).put(f"{API}/members/nobody", {"role": "viewer"}, "application/json")
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no user 'nobody'."}
    assert Membership.objects.count() == 1


def test_only_project_admins_manage_members_through_the_api(api_as, alice, bob, vera, charlie):
    for who, status in ((bob, 403), (vera, 403), (charlie, 404)):
        api = api_as(who)
        response = api.put(f"{API}/members/charlie", {"role": "admin"}, "application/json")
        assert response.status_code == status
        assert api.delete(f"{API}/members/vera").status_code == status
    assert api_as(vera).get(f"{API}/members").status_code == 200
    assert not Membership.objects.filter(user=charlie).exists()
    assert Membership.objects.get(user=vera).role == Membership.VIEWER
