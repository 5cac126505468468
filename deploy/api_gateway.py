"""What `make package` adds around Chalice's REST API, for what Chalice cannot express:
the write key and its usage plan (``WRITE_AUTH=api_key``), and the locals pointing infra/'s
read-route throttling and upload CORS rule at the API."""

from __future__ import annotations

import json
from typing import Any

READ_VERBS = ("get", "head")


def read_method_paths(template: dict[str, Any]) -> list[str]:
    """The read routes as API Gateway's method-settings paths: ``~1images~1{image_id}/GET``
    (every ``/`` of the resource path written ``~1``; the root is ``~1/GET``)."""
    swagger = json.loads(template.get("locals", {}).get("chalice_api_swagger", "{}"))
    paths = []
    for path, operations in swagger.get("paths", {}).items():
        resource = "~1" if path == "/" else path.replace("/", "~1")
        paths += [f"{resource}/{verb.upper()}" for verb in operations if verb in READ_VERBS]
    return sorted(paths)


def api_locals(template: dict[str, Any]) -> dict[str, Any]:
    """Locals of infra/ that package_override.tf.json sets from Chalice's API: the read routes
    to throttle (infra/api.tf) on its stage, and the API's own origin for the upload bucket's
    CORS rule (infra/storage.tf: the API serves the gallery). Empty without an API."""
    deployment = template.get("resource", {}).get("aws_api_gateway_deployment", {}).get("rest_api")
    if deployment is None or "rest_api" not in template["resource"].get("aws_api_gateway_rest_api", {}):
        return {}
    return {
        "api_throttled": True,
        "api_id": "${aws_api_gateway_rest_api.rest_api.id}",
        # Through the deployment, which creates the stage: the settings wait for it.
        "api_stage_name": "${aws_api_gateway_deployment.rest_api.stage_name}",
        "api_read_method_paths": read_method_paths(template),
        "api_origin": "https://${aws_api_gateway_rest_api.rest_api.id}.execute-api.${var.region}.amazonaws.com",
        "api_serves_gallery": True,
    }


def key_auth(env: dict[str, str]) -> str:
    """`api_key` when any route of the stage wants API Gateway's key (WRITE_AUTH or, from
    issue 14, READ_AUTH): the key and its usage plan serve both."""
    return "api_key" if "api_key" in (env.get("WRITE_AUTH"), env.get("READ_AUTH")) else "none"


def uses_cognito(env: dict[str, str]) -> bool:
    """Whether the stage needs the Cognito user pool infra/ can create: a route authorised
    by it, or the setting that names it."""
    return "cognito" in (env.get("WRITE_AUTH"), env.get("READ_AUTH")) or "COGNITO_USER_POOL_ARN" in env


def write_api_key(template: dict[str, Any], write_auth: str) -> dict[str, Any] | None:
    """api_key.tf.json: with WRITE_AUTH=api_key Chalice marks the write routes
    `api_key_required` but creates no key; API Gateway accepts a key only through a usage
    plan on the stage. One key, one throttled plan, the key in a sensitive output."""
    deployment = template.get("resource", {}).get("aws_api_gateway_deployment", {}).get("rest_api")
    if write_auth != "api_key" or deployment is None:
        return None
    return {
        "resource": {
            "aws_api_gateway_api_key": {
                "write": {
                    "name": "${local.prefix}-write",
                    "description": "x-api-key for the write routes (POST /uploads, DELETE /images/{id})",
                }
            },
            "aws_api_gateway_usage_plan": {
                "write": {
                    "name": "${local.prefix}-write",
                    # The deployment creates the stage (its stage_name attribute is deprecated).
                    "api_stages": [{"api_id": "${aws_api_gateway_rest_api.rest_api.id}", "stage": deployment["stage_name"]}],
                    "depends_on": ["aws_api_gateway_deployment.rest_api"],
                    "throttle_settings": [{"rate_limit": "${var.api_key_rate_limit}", "burst_limit": "${var.api_key_burst_limit}"}],
                }
            },
            "aws_api_gateway_usage_plan_key": {
                "write": {
                    "key_id": "${aws_api_gateway_api_key.write.id}",
                    "key_type": "API_KEY",
                    "usage_plan_id": "${aws_api_gateway_usage_plan.write.id}",
                }
            },
        },
        "output": {
            "write_api_key": {
                "description": "x-api-key for the write routes: terraform output -raw write_api_key",
                "value": "${aws_api_gateway_api_key.write.value}",
                "sensitive": True,
            }
        },
    }
