"""After the login form, a person lands in their project, not on the projects list."""

from core.models import Membership, Project


def _log_in(client, username, next_url=None):
    url = "/login/" + (f"?next={next_url}" if next_url else "")
    form = {"username": username, "password": f"pw-{username}"}
    if next_url:
        form["next"] = next_url
    return client.post(url, form)


def test_it_lands_in_default_when_the_user_is_in_it(client, alice):
    Membership.objects.create(
        project=Project.objects.get_or_create(slug="default", name="default")[0],
        user=alice,
        role=Membership.VIEWER,
    )
    response = _log_in(client, "alice")
    assert response.status_code == 302 and response["Location"] == "/p/default/"


def test_it_lands_in_the_users_only_project(client, alice):
    assert not Membership.objects.filter(user=alice, project__slug="default").exists()
    assert _log_in(client, "alice")["Location"] == "/p/alpha/"


def test_it_lands_in_the_first_project_by_name(client, alice):
    zulu = Project.objects.create(slug="zulu", name="Zulu")
    Membership.objects.create(project=zulu, user=alice, role=Membership.VIEWER)
    assert _log_in(client, "alice")["Location"] == "/p/alpha/"


def test_opening_the_sites_address_first_still_lands_in_the_project(client, alice):
    """The root sends everyone to /login/?next=/: that asks for no page in particular."""
    assert client.get("/")["Location"] == "/login/?next=/"
    assert _log_in(client, "alice", "/")["Location"] == "/p/alpha/"


def test_a_page_that_asked_for_the_login_wins(client, alice):
    wanted = "/p/alpha/datasets/"
    assert _log_in(client, "alice", wanted)["Location"] == wanted


def test_someone_in_no_project_lands_on_the_projects_list(client, charlie):
    response = _log_in(client, "charlie")
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
