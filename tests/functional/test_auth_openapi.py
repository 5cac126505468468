"""Who may call what, per stage, as API Gateway will enforce it; and the checked-in OpenAPI
document is exactly what the app generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.app import CognitoUserPoolAuthorizer, IAMAuthorizer
from chalice.deploy.swagger import TemplatedSwaggerGenerator

from chalicelib.settings import Settings, SettingsError
from tests.conftest import ROOT
from tools import openapi

WRITES = {("/uploads", "POST"), ("/images/{image_id}", "DELETE"), ("/health/details", "GET")}  # operators' too
READS = {("/images", "GET"), ("/images/{image_id}", "GET"), ("/images/{image_id}/similar", "GET")}
PUBLIC = {("/", "GET"), ("/health", "GET")}  # the gallery page (it needs a key to list) and the terse status
POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbC123"


def routes(module: Any) -> dict[tuple[str, str], Any]:
    return {(path, method): entry for path, methods in module.app.routes.items() for method, entry in methods.items()}


def test_every_route_is_classified() -> None:
    assert set(routes(openapi.load_app("dev"))) == WRITES | READS | PUBLIC


def test_prod_requires_an_api_key_on_read_and_write_routes() -> None:
    """Strangers learn nothing in prod: reads need the key too; only the gallery page and the
    terse health status are public."""
    prod = openapi.load_app("prod")
    assert (prod.settings.write_auth, prod.settings.read_auth) == ("api_key", "api_key")
    for key, entry in routes(prod).items():
        assert bool(entry.api_key_required) is (key in WRITES | READS), key
        assert entry.authorizer is None
    swagger = TemplatedSwaggerGenerator().generate_swagger(prod.app)
    assert swagger["securityDefinitions"] == {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}
    assert swagger["paths"]["/uploads"]["post"]["security"] == [{"api_key": []}]
    assert swagger["paths"]["/images/{image_id}"]["get"]["security"] == [{"api_key": []}]
    assert swagger["paths"]["/images"]["get"]["security"] == [{"api_key": []}]
    assert "security" not in swagger["paths"]["/health"]["get"] and "security" not in swagger["paths"]["/"]["get"]


def test_read_auth_defaults_by_stage_and_a_public_gallery_is_an_opt_in() -> None:
    """Without READ_AUTH: prod (or a stage that does not say) reads with a key; dev and the
    local stack read openly. READ_AUTH=none in prod opens the reads on purpose."""
    assert openapi.load_app("prod", READ_AUTH="").settings.read_auth == "api_key"
    assert openapi.load_app("prod", READ_AUTH="", STAGE="").settings.read_auth == "api_key"
    assert openapi.load_app("dev", READ_AUTH="").settings.read_auth == "none"
    public = openapi.load_app("prod", READ_AUTH="none")
    for key, entry in routes(public).items():
        assert bool(entry.api_key_required) is (key in WRITES), key


@pytest.mark.parametrize("mode", ["iam", "cognito"])
def test_reads_can_require_sigv4_or_a_cognito_token(mode: str) -> None:
    module = openapi.load_app("prod", READ_AUTH=mode, COGNITO_USER_POOL_ARN=POOL)
    kind = IAMAuthorizer if mode == "iam" else CognitoUserPoolAuthorizer
    for key in READS:
        assert isinstance(routes(module)[key].authorizer, kind), key
    assert routes(module)[("/health", "GET")].authorizer is None


def test_cognito_writes_use_the_configured_user_pool() -> None:
    module = openapi.load_app("prod", WRITE_AUTH="cognito", COGNITO_USER_POOL_ARN=POOL)
    for key, entry in routes(module).items():
        assert isinstance(entry.authorizer, CognitoUserPoolAuthorizer) is (key in WRITES), key
    swagger = TemplatedSwaggerGenerator().generate_swagger(module.app)
    assert swagger["securityDefinitions"]["cognito"]["x-amazon-apigateway-authorizer"]["providerARNs"] == [POOL]
    assert swagger["paths"]["/uploads"]["post"]["security"] == [{"cognito": []}]


def test_cognito_without_a_user_pool_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="COGNITO_USER_POOL_ARN"):
        openapi.load_app("prod", WRITE_AUTH="cognito")
    with pytest.raises(SettingsError, match="COGNITO_USER_POOL_ARN"):
        openapi.load_app("prod", WRITE_AUTH="cognito", COGNITO_USER_POOL_ARN="my-pool")


def test_anonymous_writes_outside_the_local_stack_refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOW_ANONYMOUS_WRITES")
    with pytest.raises(SettingsError, match="ALLOW_ANONYMOUS_WRITES"):
        openapi.load_app("prod", WRITE_AUTH="none")
    assert openapi.load_app("prod", WRITE_AUTH="none", ALLOW_ANONYMOUS_WRITES="true").settings.write_auth == "none"
    # the local stack (an emulator endpoint) is open without asking
    local = {**openapi.stage_environment("dev"), "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    Settings.from_env(local).refuse_anonymous_writes()


def test_iam_mode_signs_write_routes_with_sigv4() -> None:
    iam = openapi.load_app("prod", WRITE_AUTH="iam", READ_AUTH="none")
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
    assert documented == WRITES | READS | PUBLIC
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
