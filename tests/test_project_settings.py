"""A project's settings: outbound network for its runs, changed by Project admins only."""

from core.models import Project

API = "/api/v1/projects/alpha"


def test_it_shows_the_setting_to_members(pages_as, vera, project):
    page = pages_as(vera).get("/p/alpha/settings/").content.decode()
    assert "No network" in page
    assert "Project admins can change this" in page
    assert 'name="allow_network"' not in page


def test_a_project_admin_allows_and_forbids_network(pages_as, alice, project):
    client = pages_as(alice)
    assert client.post("/p/alpha/settings/", {"allow_network": "on"}).status_code == 302
    assert Project.objects.get(slug="alpha").allow_network is True
    assert "Outbound network allowed" in client.get("/p/alpha/settings/").content.decode()
    client.post("/p/alpha/settings/", {})
    assert Project.objects.get(slug="alpha").allow_network is False


def test_a_data_scientist_cannot_change_it(pages_as, bob, project):
    response = pages_as(bob).post("/p/alpha/settings/", {"allow_network": "on"})
    assert response.status_code == 403
    assert Project.objects.get(slug="alpha").allow_network is False


def test_an_outsider_sees_nothing(pages_as, charlie, project):
    assert pages_as(charlie).get("/p/alpha/settings/").status_code == 404


def test_the_api_reads_and_changes_it(api_as, alice, bob, charlie, project):
    assert api_as(bob).get(API).json()["allow_network"] is False
    refused = api_as(bob).patch(API, {"allow_network": True}, content_type="application/json")
    assert refused.status_code == 403 and "detail" in refused.json()
    hidden = api_as(charlie).patch(API, {"allow_network": True}, content_type="application/json")
    assert hidden.status_code == 404
    answer = api_as(alice).patch(API, {"allow_network": True}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["allow_network"] is True


def test_the_api_refuses_a_value_that_is_not_true_or_false(api_as, alice, project):
    for body in (
        {"allow_network": "maybe"},
        {},
        {"allow_network": [1]},
        {"allow_network": 0},
        {"allow_network": "true"},
    ):
        response = api_as(alice).patch(API, body, content_type="application/json")
        assert response.status_code == 422, body
        assert "allow_network" in str(response.json())
    garbage = api_as(alice).patch(API, "{not json", content_type="application/json")
    assert 400 <= garbage.status_code < 500
    assert Project.objects.get(slug="alpha").allow_network is False
