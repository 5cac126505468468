"""Who may call what, per stage, as API Gateway will enforce it; and the checked-in OpenAPI
document is exactly what the app generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.app import IAMAuthorizer
from chalice.deploy.swagger import TemplatedSwaggerGenerator

from tests.conftest import ROOT
from tools import openapi

WRITES = {("/uploads", "POST"), ("/images/{image_id}", "DELETE")}
READS = {("/", "GET"), ("/images", "GET"), ("/images/{image_id}", "GET"), ("/images/{image_id}/similar", "GET"), ("/health", "GET")}


def routes(module: Any) -> dict[tuple[str, str], Any]:
    return {(path, method): entry for path, methods in module.app.routes.items() for method, entry in methods.items()}


def test_every_route_is_classified() -> None:
    assert set(routes(openapi.load_app("dev"))) == WRITES | READS


def test_prod_requires_an_api_key_on_write_routes_only() -> None:
    prod = openapi.load_app("prod")
    assert prod.settings.write_auth == "api_key"
    for key, entry in routes(prod).items():
        assert bool(entry.api_key_required) is (key in WRITES), key
        assert entry.authorizer is None
    swagger = TemplatedSwaggerGenerator().generate_swagger(prod.app)
    assert swagger["securityDefinitions"] == {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}
    assert swagger["paths"]["/uploads"]["post"]["security"] == [{"api_key": []}]
    assert "security" not in swagger["paths"]["/images/{image_id}"]["get"]


def test_iam_mode_signs_write_routes_with_sigv4() -> None:
    iam = openapi.load_app("prod", WRITE_AUTH="iam")
    for key, entry in routes(iam).items():
        assert isinstance(entry.authorizer, IAMAuthorizer) is (key in WRITES), key
        assert not entry.api_key_required
    swagger = TemplatedSwaggerGenerator().generate_swagger(iam.app)
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert swagger["paths"]["/images/{image_id}"]["delete"]["security"] == [{"sigv4": []}]


def test_dev_is_open() -> None:
    dev = openapi.load_app("dev")
    assert all(not e.api_key_required and e.authorizer is None for e in routes(dev).values())
    assert dev.app.debug is False  # tracebacks never reach a client unless API_DEBUG is set locally


def test_checked_in_openapi_matches_the_app() -> None:
    generated = openapi.render(openapi.load_app(openapi.DOC_STAGE).app)
    checked_in = (ROOT / "openapi.json").read_text()
    assert checked_in == generated, "openapi.json is stale: run `make openapi` and commit it"


def test_openapi_document_describes_every_route_and_error() -> None:
    doc = json.loads((ROOT / "openapi.json").read_text())
    assert doc["swagger"] == "2.0"
    documented = {(path, method.upper()) for path, methods in doc["paths"].items() for method in methods}
    assert documented == WRITES | READS
    upload = doc["paths"]["/uploads"]["post"]
    assert {"201", "400", "413", "415"} <= set(upload["responses"])
    assert doc["definitions"]["UploadRequest"]["required"] == ["filename", "content_type"]
    assert "x-amazon-apigateway-integration" not in json.dumps(doc)


def test_an_undocumented_route_fails_generation() -> None:
    dev = openapi.load_app("dev")

    @dev.app.route("/secret")
    def secret() -> dict[str, str]:
        return {}

    with pytest.raises(KeyError, match="/secret"):
        openapi.document(dev.app)
