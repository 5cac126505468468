"""Files `make package` adds around Chalice's REST API, for what Chalice cannot express:
the write key and its usage plan (``WRITE_AUTH=api_key``), per-method throttling of the
read routes, and the API's origin for the upload bucket's CORS rule."""

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


def api_origin(template: dict[str, Any]) -> str | None:
    """The API's own origin (the gallery's page is served by it), as a Terraform expression."""
    if "rest_api" not in template.get("resource", {}).get("aws_api_gateway_rest_api", {}):
        return None
    return "https://${aws_api_gateway_rest_api.rest_api.id}.execute-api.${var.region}.amazonaws.com"


def api_gateway_extras(template: dict[str, Any]) -> dict[str, Any] | None:
    """api_gateway.tf.json: the read routes throttled per method (an anonymous flood of GETs
    is answered 429 by API Gateway and cannot use up the API function's reserved concurrency,
    which POST /uploads and DELETE share)."""
    deployment = template.get("resource", {}).get("aws_api_gateway_deployment", {}).get("rest_api")
    if deployment is None:
        return None
    return {
        "locals": {"api_read_method_paths": read_method_paths(template)},
        "resource": {
            "aws_api_gateway_method_settings": {
                "reads": {
                    "for_each": "${toset(local.api_read_method_paths)}",
                    "rest_api_id": "${aws_api_gateway_rest_api.rest_api.id}",
                    # The deployment creates the stage (its stage_name attribute is deprecated).
                    "stage_name": deployment["stage_name"],
                    "method_path": "${each.value}",
                    "depends_on": ["aws_api_gateway_deployment.rest_api"],
                    "settings": [
                        {
                            "throttling_rate_limit": "${var.api_read_rate_limit}",
                            "throttling_burst_limit": "${var.api_read_burst_limit}",
                        }
                    ],
                }
            }
        },
    }


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
