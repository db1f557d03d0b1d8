"""Members on the Members page and the API: the last Project admin stays, and every change is
in ML Logs with the person who made it."""

from core.models import Event, Membership

API = "/api/v1/projects/alpha"


def member_events():
    return list(
        Event.objects.filter(category="member")
        .order_by("id")
        .values_list("action", "actor_name", "object_key", "data")
    )


def test_page_changes_are_logged_with_the_admin_as_actor(pages_as, alice, charlie, project):
    page = pages_as(alice)
    page.post("/p/alpha/members/", {"username": "charlie", "role": "viewer"})
    page.post("/p/alpha/members/", {"username": "charlie", "role": "viewer", "row": "1"})  # no-op
    page.post("/p/alpha/members/", {"username": "charlie", "role": "data_scientist", "row": "1"})
    page.post("/p/alpha/members/", {"remove": "charlie", "row": "1"})
    assert member_events() == [
        ("added", "alice", "charlie", {"username": "charlie", "role": "viewer"}),
        (
            "role_changed",
            "alice",
            "charlie",
            {"username": "charlie", "role": "data_scientist", "from": "viewer"},
        ),
        ("removed", "alice", "charlie", {"username": "charlie", "role": "data_scientist"}),
    ]
    event = Event.objects.filter(category="member").first()
    assert event.project == project and event.actor == alice
    assert event.url == "/p/alpha/members/" and event.object_type == "member"


def test_api_changes_are_logged_with_the_tokens_user_as_actor(api_as, alice, charlie):
    api = api_as(alice)
    api.put(f"{API}/members/charlie", {"role": "viewer"}, "application/json")
    api.delete(f"{API}/members/charlie")
    api.delete(f"{API}/members/charlie")  # not a member any more: nothing to log
    assert [(a, who) for a, who, *_ in member_events()] == [
        ("added", "alice"),
        ("removed", "alice"),
    ]


def test_the_last_project_admin_cant_be_removed_or_demoted(pages_as, api_as, alice, bob):
    page = pages_as(alice)
    response = page.post("/p/alpha/members/", {"remove": "alice", "row": "1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        "alice is the only Project admin of" in html and "make someone else Project admin" in html
    )
    response = page.post("/p/alpha/members/", {"username": "alice", "role": "viewer", "row": "1"})
    assert response.status_code == 400
    assert "can&#x27;t be made a Viewer" in response.content.decode()

    api = api_as(alice)
    response = api.put(f"{API}/members/alice", {"role": "data_scientist"}, "application/json")
    assert response.status_code == 409
    assert "only Project admin" in response.json()["errors"]["username"][0]
    assert api.delete(f"{API}/members/alice").status_code == 409
    assert Membership.objects.get(user=alice).role == Membership.ADMIN
    assert member_events() == []

    # with a second admin, the first may step down
    api.put(f"{API}/members/bob", {"role": "admin"}, "application/json")
    assert api.delete(f"{API}/members/alice").status_code == 204
    assert list(Membership.objects.values_list("user__username", "role")) == [("bob", "admin")]


def test_a_superuser_is_logged_as_the_actor(pages_as, alice, charlie, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw-root-long")
    pages_as(root).post("/p/alpha/members/", {"username": "charlie", "role": "viewer"})
    assert Event.objects.get(category="member").actor == root


def test_a_viewer_changes_nothing_and_nothing_is_logged(pages_as, api_as, vera, bob):
    response = pages_as(vera).post("/p/alpha/members/", {"remove": "bob", "row": "1"})
    assert response.status_code == 403
    response = api_as(vera).put(f"{API}/members/vera", {"role": "admin"}, "application/json")
    assert response.status_code == 403
    assert Membership.objects.get(user=vera).role == Membership.VIEWER
    assert member_events() == []


def test_the_page_shows_each_members_role_to_change_in_place(pages_as, alice, bob, vera):
    html = pages_as(alice).get("/p/alpha/members/").content.decode()
    assert 'aria-label="Role of bob"' in html and "Remove bob from Alpha?" in html
    viewer_html = pages_as(vera).get("/p/alpha/members/").content.decode()
    assert "Role of bob" not in viewer_html and "Data scientist" in viewer_html


def test_an_unknown_or_missing_username_is_said_under_the_field(pages_as, alice):
    page = pages_as(alice)
    response = page.post("/p/alpha/members/", {"username": "", "role": "viewer"})
    assert response.status_code == 400 and "A username is required" in response.content.decode()
    response = page.post("/p/alpha/members/", {"username": "nobody", "role": "king"})
    assert response.status_code == 400 and "is not a role" in response.content.decode()


def test_member_events_are_in_the_projects_ml_logs(api_as, pages_as, alice, charlie):
    api = api_as(alice)
    api.put(f"{API}/members/charlie", {"role": "viewer"}, "application/json")
    items = api.get(f"{API}/logs?category=member").json()["items"]
    assert [(i["action"], i["actor"], i["object"]) for i in items] == [
        ("added", "alice", "charlie")
    ]
    assert (
        items[0]["url"] == "/p/alpha/members/" and "charlie added as Viewer" in items[0]["message"]
    )
    html = pages_as(alice).get("/p/alpha/logs/").content.decode()
    assert "charlie added as Viewer" in html
