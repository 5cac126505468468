"""The functions' IAM policies, rendered for one deployment.

`.chalice/policy-prod*.json` are templates: bucket names, the CloudFront distribution, the
region and the account are placeholders (``{upload_bucket}``...), never wildcards. A bucket
pattern such as ``image-pipeline-prod-processed*`` would also match a bucket someone else
creates in another account (S3 names are global), and ``arn:aws:dynamodb:*:*:`` any table of
that name anywhere. Two renderings:

- path 1 (``make package``): Terraform references, so every ARN is exact at apply time;
- path 2 (``make chalice-config``): the values of infra's ``chalice_environment`` output,
  written beside the template as ``<name>.rendered.json`` for ``chalice deploy``.

Every S3 statement also carries an ``s3:ResourceAccount`` condition: even an exact bucket
name, deleted and re-created by someone else, is not ours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# Placeholder => the Terraform expression giving its value in the packaged directory.
TERRAFORM_VALUES: dict[str, str] = {
    "region": "${var.region}",
    "account": "${data.aws_caller_identity.current.account_id}",
    "upload_bucket": "${aws_s3_bucket.uploads.bucket}",
    "processed_bucket": "${aws_s3_bucket.processed.bucket}",
    "cdn_distribution": "${aws_cloudfront_distribution.processed.id}",
}
# Placeholder => the key of infra's `chalice_environment` output holding its value.
OUTPUT_KEYS: dict[str, str] = {
    "region": "AWS_REGION",
    "account": "AWS_ACCOUNT_ID",
    "upload_bucket": "UPLOAD_BUCKET",
    "processed_bucket": "PROCESSED_BUCKET",
    "cdn_distribution": "CDN_DISTRIBUTION_ID",
}
RENDERED_SUFFIX = ".rendered.json"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class PolicyError(ValueError):
    """A template names a placeholder with no value; the message names it."""


def render(template: str, values: dict[str, str]) -> dict[str, Any]:
    """The template's text with every ``{placeholder}`` replaced, parsed."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise PolicyError(f"policy placeholder {{{name}}} has no value (known: {', '.join(sorted(values))})")
        return json.dumps(values[name])[1:-1]  # escaped for a JSON string

    # JSON's own braces never enclose a bare lowercase word, so only placeholders match.
    rendered: dict[str, Any] = json.loads(_PLACEHOLDER.sub(value, template))
    return rendered


def output_values(outputs: dict[str, Any]) -> dict[str, str]:
    """Placeholder values from `terraform output -json chalice_environment` (path 2)."""
    missing = [key for key in OUTPUT_KEYS.values() if not outputs.get(key)]
    if missing:
        raise PolicyError(f"the Terraform outputs lack {', '.join(missing)}: apply infra/ again (make infra) and retry")
    return {name: str(outputs[key]) for name, key in OUTPUT_KEYS.items()}


def template_name(policy_file: str) -> str:
    """The template a (possibly rendered) policy file name comes from."""
    return policy_file[: -len(RENDERED_SUFFIX)] + ".json" if policy_file.endswith(RENDERED_SUFFIX) else policy_file


def rendered_name(policy_file: str) -> str:
    return template_name(policy_file)[: -len(".json")] + RENDERED_SUFFIX


def policy_files(stage_config: dict[str, Any]) -> set[str]:
    """Every iam_policy_file the stage names (its own and its functions')."""
    names = {stage_config["iam_policy_file"]} if stage_config.get("iam_policy_file") else set()
    for function in stage_config.get("lambda_functions", {}).values():
        if function.get("iam_policy_file"):
            names.add(function["iam_policy_file"])
    return names


def repoint(stage_config: dict[str, Any], name_for: Callable[[str], str]) -> None:
    """Set every iam_policy_file of the stage to `name_for(current name)`."""
    if stage_config.get("iam_policy_file"):
        stage_config["iam_policy_file"] = name_for(stage_config["iam_policy_file"])
    for function in stage_config.get("lambda_functions", {}).values():
        if function.get("iam_policy_file"):
            function["iam_policy_file"] = name_for(function["iam_policy_file"])


ACCOUNT_CONDITION_KEYS = ("s3:ResourceAccount", "aws:ResourceAccount")
# Services whose ARNs carry a region and an account (CloudFront's are global: no region).
REGIONAL = ("dynamodb", "sqs", "logs", "sns", "lambda")
GLOBAL_WITH_ACCOUNT = ("cloudfront",)


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _account_condition(statement: dict[str, Any], account: str) -> bool:
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return any(listed(equals.get(key)) == [account] for key in ACCOUNT_CONDITION_KEYS)


def problems(policy_doc: dict[str, Any], region: str, account: str) -> list[str]:
    """Resources a rendered policy could match in another account or region: a bucket name
    with a wildcard and no account condition; a regional ARN whose region or account is not
    `region`/`account`. Empty when every resource is ours."""
    found = []
    for statement in listed(policy_doc["Statement"]):
        sid = statement.get("Sid", "?")
        for resource in listed(statement["Resource"]):
            parts = resource.split(":", 5)
            service = parts[2] if len(parts) == 6 else ""
            if service == "s3":
                bucket = parts[5].split("/", 1)[0]
                if any(c in bucket for c in "*?") and not _account_condition(statement, account):
                    found.append(f"{sid}: bucket pattern {resource} without an s3:ResourceAccount condition")
            elif service in REGIONAL and (parts[3], parts[4]) != (region, account):
                found.append(f"{sid}: {resource} is not pinned to region {region} and account {account}")
            elif service in GLOBAL_WITH_ACCOUNT and parts[4] != account:
                found.append(f"{sid}: {resource} is not pinned to account {account}")
            elif not service:
                found.append(f"{sid}: {resource} is not an ARN")
    return found


def checked(policy_doc: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """`policy_doc` if no resource could be another account's or region's, else PolicyError."""
    found = problems(policy_doc, values["region"], values["account"])
    if found:
        raise PolicyError("; ".join(found) + " (use the {region}/{account}/{..._bucket} placeholders)")
    return policy_doc
