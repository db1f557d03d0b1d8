"""Every error under /api/ is JSON; unknown fields are refused by name; one package version
has its own address."""

import pytest
from django.test import Client
from ninja.params.models import BodyModel
from pydantic import BaseModel

from aicenter.api import api
from tests.conftest import classifier_and_invoices

API = "/api/v1/projects/alpha"


def _json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing", f"{API}/nothing/here", "/api/v1/projects/", "/api/v2/projects", "/api/"],
)
def test_an_unknown_path_is_a_json_404(api_as, alice, path):
    for client in (api_as(alice), Client()):  # with or without a token
        detail = _json_error(client.get(path), 404)
        assert detail == f"No API endpoint at {path}: see /api/v1/docs for the ones there are."


def test_a_method_an_endpoint_lacks_is_a_json_405(api_as, alice):
    response = api_as(alice).put(f"{API}/packages", {}, content_type="application/json")
    detail = _json_error(response, 405)
    assert detail == f"PUT is not allowed on {API}/packages; it answers GET, POST."
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_it_answers_one_package_version(api_as, alice, project):
    classifier_and_invoices(project, alice)
    client = api_as(alice)
    whole = client.get(f"{API}/packages/classifier").json()["versions"][0]
    response = client.get(f"{API}/packages/classifier/versions/1.0")
    assert response.status_code == 200, response.content
    assert response.json() == whole
    assert set(whole) == {"version", "source", "pipeline", "parent", "created_at", "environment"}
    detail = _json_error(client.get(f"{API}/packages/classifier/versions/7.0"), 404)
    assert detail == "Package classifier has no version 7.0."
    assert "not a version number" in _json_error(
        client.get(f"{API}/packages/classifier/versions/latest"), 404
    )


def test_an_outsider_learns_nothing_of_a_version(api_as, alice, charlie, project):
    classifier_and_invoices(project, alice)
    _json_error(api_as(charlie).get(f"{API}/packages/classifier/versions/1.0"), 404)


@pytest.mark.parametrize(
    "method,path,body,unknown",
    [
        ("post", f"{API}/pipelines", {"package": "classifier", "datset": "invoices"}, "datset"),
        ("post", "/api/v1/projects", {"name": "Beta", "descripton": "x"}, "descripton"),
        ("patch", f"{API}/skills/s", {"replica": 2}, "replica"),
        ("post", f"{API}/datasets", {"name": "d", "kind": "csv"}, "kind"),
        ("post", f"{API}/webhooks", {"url": "https://example.com/", "event": ["*"]}, "event"),
    ],
)
def test_unknown_fields_are_refused_by_name(api_as, alice, method, path, body, unknown):
    response = getattr(api_as(alice), method)(path, body, content_type="application/json")
    assert response.status_code == 422, response.content
    errors = response.json()["errors"]
    assert errors[unknown] == [
        "Unknown field: this request takes no such field (see /api/v1/docs)."
    ]
    assert unknown in response.json()["detail"]


def _body_schemas():
    for _, router in api._routers:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                for model in operation.models:
                    if issubclass(model, BodyModel):
                        for field in model.model_fields.values():
                            if isinstance(field.annotation, type) and issubclass(
                                field.annotation, BaseModel
                            ):
                                yield operation, field.annotation


def test_every_json_body_refuses_unknown_fields():
    schemas = list(_body_schemas())
    assert len(schemas) >= 10
    for operation, schema in schemas:
        assert schema.model_config.get("extra") == "forbid", (operation.view_func, schema)
