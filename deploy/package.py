"""Build the all-Terraform deployment directory for a stage.

`chalice package --pkg-format terraform` describes the functions and their triggers; infra/
holds everything else (buckets, table, topics, queues, alarms, CDN). This script puts both in
one directory that `terraform init && terraform apply` deploys:

1. copies the app (app.py, chalicelib/, vendor/, .chalice/, and requirements-lock.txt as its
   requirements.txt: hash-pinned, deploy/lock.py) into a clean source directory and, in
   that copy only, sets the stage's bucket/table/topic/queue variables to Terraform
   references (``${aws_s3_bucket.uploads.bucket}``...), so Chalice wires its triggers and
   environment to the resources infra/ creates, and renders the IAM policy templates with
   exact ARNs (deploy/policy.py);
2. runs ``chalice package`` there;
3. repairs chalice.tf.json for current Terraform (drops Chalice's Terraform < 1.4 / AWS
   provider < 5 pins and its ``null_data_source``, which needs a provider nobody uses);
4. copies infra/*.tf (and infra/terraform.tfvars if you made one) beside it and writes
   ``package_override.tf.json`` for what Chalice cannot express: the app's function list,
   the bucket notification waiting for its Lambda permissions, functions waiting for their
   log groups, async retries and on-failure destinations, the API and stage whose read
   routes infra/api.tf throttles, the API's origin for the upload CORS rule, the Cognito
   pool for a cognito stage; with ``WRITE_AUTH=api_key``, ``api_key.tf.json``: the key and
   usage plan API Gateway needs to accept it (deploy/api_gateway.py).

The output directory keeps Terraform's state and plugins (``terraform.tfstate*``,
``.terraform*``) between runs; only generated files are replaced.

Usage: python deploy/package.py --stage prod [--out build/prod/terraform]
       python deploy/package.py --stage prod --infra-only          (build/prod/infra)
       python deploy/package.py --stage prod --chalice-config outputs.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python deploy/package.py): make `deploy` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import lock, policy
from deploy.api_gateway import api_locals, key_auth, uses_cognito, write_api_key

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"

# Settings (chalicelib/settings.py) that name a resource infra/ creates, and the Terraform
# expression that replaces them when the stage's config sets them (even to ""). These go
# into the config Chalice imports the app with, so its triggers (S3 notification, SNS
# subscription) reference the Terraform resources. SNS topics go by name: Chalice builds
# their ARNs itself.
TERRAFORM_REFERENCES: dict[str, str] = {
    "UPLOAD_BUCKET": "${aws_s3_bucket.uploads.bucket}",
    "PROCESSED_BUCKET": "${aws_s3_bucket.processed.bucket}",
    "CATALOG_TABLE": "${aws_dynamodb_table.catalog.name}",
    "EVENTS_TOPIC": "${aws_sns_topic.events.name}",
    "ALERTS_TOPIC_ARN": "${aws_sns_topic.alerts.arn}",
    # Chalice's CognitoUserPoolAuthorizer puts the ARN into the swagger at import time (a
    # JSON string in a JSON string: no quotes in the expression). A stage naming it gets the
    # pool (uses_cognito).
    "COGNITO_USER_POOL_ARN": "${aws_cognito_user_pool.users[0].arn}",
}
# Settings the app validates at import (a host name), so they cannot hold a reference
# while Chalice imports it: they are swapped in the generated functions' environment.
LATE_REFERENCES: dict[str, str] = {
    "CDN_DOMAIN": "${aws_cloudfront_distribution.processed.domain_name}",
    "CDN_DISTRIBUTION_ID": "${aws_cloudfront_distribution.processed.id}",
}
# Queue names have no random part: the stage's value must be the name infra/ gives, and
# stays a plain name in the environment (so the functions need not wait ~25 s for the
# queue); only the SQS trigger references the queue resource.
QUEUE_ARNS: dict[str, str] = {"REPROCESS_QUEUE": "${aws_sqs_queue.reprocess.arn}"}
INFRA_QUEUE_NAMES: dict[str, str] = {"REPROCESS_QUEUE": "image-pipeline-{stage}-reprocess"}

# Generated files, replaced on every run; anything else in the directory (state, plugins,
# terraform.tfvars you added there) is left alone.
GENERATED_SUFFIXES = (".tf", ".tf.json")
GENERATED_FILES = ("deployment.zip",)


class PackageError(RuntimeError):
    """The app cannot be packaged the way infra/ expects; the message says why."""


def package(stage: str, out: Path, *, region: str = "us-east-1", skip_requirements: bool = False) -> dict[str, Any]:
    """Build `out` for `stage`; returns the post-processed chalice.tf.json."""
    deployable_stage(stage, json.loads((ROOT / ".chalice" / "config.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    with tempfile.TemporaryDirectory(prefix="image-pipeline-package-") as tmp:
        src = Path(tmp) / "src"
        _copy_app(src, stage, skip_requirements=skip_requirements)
        generated = Path(tmp) / "chalice"
        env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", region)}
        chalice = Path(sys.executable).parent / "chalice"
        cmd = [str(chalice) if chalice.exists() else "chalice", "package", "--pkg-format", "terraform", "--stage", stage, str(generated)]
        result = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise PackageError(f"chalice package failed:\n{result.stdout}{result.stderr}")
        template = json.loads((generated / "chalice.tf.json").read_text())
        shutil.move(str(generated / "deployment.zip"), out / "deployment.zip")
    template = fix_template(template, queues=_stage_queues(stage))
    (out / "chalice.tf.json").write_text(json.dumps(template, indent=2) + "\n")
    (out / "package_override.tf.json").write_text(json.dumps(overrides(template, stage), indent=2) + "\n")
    # One key serves both: READ_AUTH defaults to api_key on a deployable stage (Settings).
    env = _stage_env(stage)
    api_key = write_api_key(template, key_auth({**env, "READ_AUTH": env.get("READ_AUTH") or "api_key"}))
    if api_key:
        (out / "api_key.tf.json").write_text(json.dumps(api_key, indent=2) + "\n")
    _copy_infra(out)
    return template


def infra_only(stage: str, out: Path) -> None:
    """The chalice-deploy path: infra/ alone for `stage`, in its own directory (and state)."""
    deployable_stage(stage, json.loads((ROOT / ".chalice" / "config.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    _copy_infra(out)
    (out / "stage_override.tf.json").write_text(json.dumps({"variable": {"stage": {"default": stage}}}, indent=2) + "\n")


def chalice_config(stage: str, outputs: dict[str, Any], config_path: Path = ROOT / ".chalice" / "config.json") -> dict[str, str]:
    """Write infra's `chalice_environment` output into the stage's environment_variables
    (the settings the stage already defines); returns what changed."""
    config = json.loads(config_path.read_text())
    stage_config = deployable_stage(stage, config)
    env = stage_config.setdefault("environment_variables", {})
    changed = {name: str(outputs[name]) for name in env if name in outputs and env[name] != outputs[name]}
    env.update(changed)
    # chalice deploy reads the policy files as they are: render the templates with the
    # deployed names, account and region beside them, and point the stage at the copies.
    try:
        values = policy.output_values(outputs)
        for name in sorted(policy.policy_files(stage_config)):
            template = (config_path.parent / policy.template_name(name)).read_text()
            rendered = policy.checked(policy.render(template, values), values)
            (config_path.parent / policy.rendered_name(name)).write_text(json.dumps(rendered, indent=2) + "\n")
    except policy.PolicyError as exc:
        raise PackageError(str(exc)) from None
    policy.repoint(stage_config, policy.rendered_name)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return changed


def deployable_stage(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """The stage's part of .chalice/config.json, if it can go to AWS."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise PackageError(f"stage {stage!r} is not in .chalice/config.json (stages: {', '.join(stages)})")
    if stages[stage].get("autogen_policy", True) is not False:
        # Chalice's policy generator crashes on app.py (and would not be least privilege);
        # dev is the local stack's stage: its names and alerts ARN are the emulator's.
        raise PackageError(
            f"stage {stage!r} cannot be deployed: it lets Chalice generate the IAM policy, which Chalice cannot do "
            'for this app. Deploy a stage with "autogen_policy": false and its own "iam_policy_file", as prod '
            'has (README "IAM policy"): STAGE=prod. (dev is the local stage: make run.)'
        )
    stage_config: dict[str, Any] = stages[stage]
    return stage_config


def _copy_infra(out: Path) -> None:
    for tf in sorted(INFRA.glob("*.tf")):
        shutil.copy2(tf, out / tf.name)
    if (INFRA / "terraform.tfvars").exists():
        shutil.copy2(INFRA / "terraform.tfvars", out / "terraform.tfvars")


def _stage_env(stage: str) -> dict[str, str]:
    env: dict[str, str] = (
        json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"].get(stage, {}).get("environment_variables", {})
    )
    return env


def _stage_queues(stage: str) -> dict[str, str]:
    """The stage's queue settings (name => value), checked against infra/'s names."""
    env = _stage_env(stage)
    queues = {name: env[name] for name in QUEUE_ARNS if name in env}
    for name, value in queues.items():
        expected = INFRA_QUEUE_NAMES[name].format(stage=stage)
        if value != expected:
            raise PackageError(f"{name}={value!r} in stage {stage!r}: infra/ creates {expected!r}; use that name")
    return queues


def _clean(out: Path) -> None:
    for path in out.iterdir():
        if path.is_file() and (path.name.endswith(GENERATED_SUFFIXES) or path.name in GENERATED_FILES):
            path.unlink()


def _copy_app(src: Path, stage: str, *, skip_requirements: bool) -> None:
    src.mkdir(parents=True)
    shutil.copy2(ROOT / "app.py", src / "app.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "chalicelib", src / "chalicelib", ignore=ignore)
    if (ROOT / "vendor").is_dir():
        shutil.copytree(ROOT / "vendor", src / "vendor", ignore=ignore)
    try:
        (src / "requirements.txt").write_text("" if skip_requirements else lock.lambda_requirements())
    except lock.LockError as exc:
        raise PackageError(str(exc)) from None
    shutil.copytree(ROOT / ".chalice", src / ".chalice", ignore=shutil.ignore_patterns("deployments", "deployed"))
    if not skip_requirements:
        # Reuse Chalice's cache of built dependencies (keyed by requirements) across runs.
        cache = ROOT / ".chalice" / "deployments"
        cache.mkdir(exist_ok=True)
        (src / ".chalice" / "deployments").symlink_to(cache, target_is_directory=True)
    config_path = src / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    stage_config = deployable_stage(stage, config)
    # Only the settings the stage defines: an unused reference would still make every function
    # wait for that resource (CloudFront, a queue) at apply time.
    env = stage_config.get("environment_variables", {})
    stage_config["environment_variables"] = referenced_environment(env)
    # Chalice would emit its own log groups (and its terraform output breaks on them): ours
    # live in infra/monitoring.tf.
    stage_config.pop("log_retention_in_days", None)
    for function in stage_config.get("lambda_functions", {}).values():
        function.pop("log_retention_in_days", None)
    config_path.write_text(json.dumps(config, indent=2))
    _render_policies(src / ".chalice", stage_config, policy.TERRAFORM_VALUES)


def _render_policies(chalice_dir: Path, stage_config: dict[str, Any], values: dict[str, str]) -> None:
    """Each policy file the stage names, rendered from its template in .chalice/ (the
    checked-in file) under the name the stage's config uses."""
    for name in sorted(policy.policy_files(stage_config)):
        template = (ROOT / ".chalice" / policy.template_name(name)).read_text()
        try:
            rendered = policy.checked(policy.render(template, values), values)
        except policy.PolicyError as exc:
            raise PackageError(f".chalice/{policy.template_name(name)}: {exc}") from None
        (chalice_dir / name).write_text(json.dumps(rendered, indent=2) + "\n")


def fix_template(template: dict[str, Any], queues: dict[str, str] | None = None) -> dict[str, Any]:
    """Make Chalice's output init with current Terraform and wire it to infra/. `queues`:
    the stage's queue settings (REPROCESS_QUEUE => its plain name)."""
    template = json.loads(json.dumps(template))  # a deep copy
    # Versions are pinned once, in infra/versions.tf.
    template.pop("terraform", None)
    template.get("data", {}).pop("null_data_source", None)
    resources = template.setdefault("resource", {})
    if resources.get("aws_cloudwatch_log_group"):
        raise PackageError("chalice emitted log groups: remove log_retention_in_days from .chalice/config.json (infra/ manages them)")
    for name, notification in resources.get("aws_s3_bucket_notification", {}).items():
        bucket = notification["bucket"]
        if not bucket.startswith("${aws_s3_bucket."):
            raise PackageError(
                f"bucket notification {name} is for {bucket!r}, not a bucket infra/ creates: "
                "S3 handlers must subscribe to UPLOAD_BUCKET (or another setting in TERRAFORM_REFERENCES)"
            )
        # S3 checks that it may invoke every function when the notification is created.
        notification["depends_on"] = sorted(
            f"aws_lambda_permission.{perm_name}"
            for perm_name, perm in resources.get("aws_lambda_permission", {}).items()
            if perm.get("principal") == "s3.amazonaws.com" and perm.get("source_arn", "").endswith(f":::{bucket}")
        )
    for function in resources.get("aws_lambda_function", {}).values():
        # Our log groups (with retention) must exist before Lambda would create its own.
        function["depends_on"] = ["aws_cloudwatch_log_group.functions"]
        env = function.get("environment", {}).get("variables", {})
        for name, reference in LATE_REFERENCES.items():
            if name in env:
                env[name] = reference
    for api in resources.get("aws_api_gateway_rest_api", {}).values():
        # A replaced API is created before the old one goes, so its URL never points at nothing.
        api["lifecycle"] = {"create_before_destroy": True}
    for name, queue in (queues or {}).items():
        for mapping in resources.get("aws_lambda_event_source_mapping", {}).values():
            if mapping["event_source_arn"].endswith(f":{queue}"):
                mapping["event_source_arn"] = QUEUE_ARNS[name]
    return template


def referenced_environment(env: dict[str, str]) -> dict[str, str]:
    """The stage's settings with those naming an infra/ resource turned into references."""
    return {name: TERRAFORM_REFERENCES.get(name, value) for name, value in env.items()}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The app's functions as infra/ describes them: handler => {trigger, timeout}."""
    resources = template.get("resource", {})
    text_of = {kind: json.dumps(resources.get(kind, {})) for kind in resources}

    def referenced(handler: str, *kinds: str) -> bool:
        ref = f"aws_lambda_function.{handler}."
        return any(ref in text_of.get(kind, "") for kind in kinds)

    found: dict[str, dict[str, Any]] = {}
    for handler, function in resources.get("aws_lambda_function", {}).items():
        if referenced(handler, "aws_s3_bucket_notification", "aws_sns_topic_subscription", "aws_cloudwatch_event_target"):
            trigger = "async"
        elif referenced(handler, "aws_lambda_event_source_mapping"):
            trigger = "sqs"
        elif referenced(handler, "aws_api_gateway_rest_api", "aws_lambda_permission") and handler == "api_handler":
            trigger = "api"
        else:
            trigger = "other"
        found[handler] = {"timeout": int(function.get("timeout", 60)), "trigger": trigger}
    return dict(sorted(found.items()))


def overrides(template: dict[str, Any], stage: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """package_override.tf.json: values infra/ cannot know on its own."""
    app_functions = functions(template)
    # Terraform forbids overriding depends_on: the async settings get their dependency on the
    # functions from a for_each that names the functions' resources.
    async_refs = ", ".join(f"{h} = aws_lambda_function.{h}.function_name" for h, f in app_functions.items() if f["trigger"] == "async")
    override: dict[str, Any] = {
        "variable": {
            "stage": {"default": stage},
            "functions": {"default": app_functions},
            "configure_functions": {"default": True},
        },
        "resource": {
            "aws_lambda_function_event_invoke_config": {"async": {"for_each": f"${{{{{async_refs}}}}}"}},
        },
    }
    if uses_cognito(_stage_env(stage) if env is None else env):
        override["variable"]["cognito_user_pool"] = {"default": True}
    api = api_locals(template)
    if api:
        override["locals"] = api
    endpoint = template.get("output", {}).get("EndpointURL", {}).get("value")
    if endpoint:
        override["output"] = {"api_url": {"value": endpoint}}
    return override


def _read_outputs(path: Path) -> dict[str, Any]:
    """`terraform output -json chalice_environment`, as `make chalice-config` saves it."""
    try:
        outputs = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read Terraform outputs from {path}: {exc}") from None
    if not isinstance(outputs, dict):
        raise PackageError(f"{path} holds no JSON object of settings (terraform output -json chalice_environment)")
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--out", type=Path, help="output directory (default build/<stage>/terraform, or build/<stage>/infra)")
    parser.add_argument("--region", default="us-east-1", help="AWS_DEFAULT_REGION for chalice package if not set")
    parser.add_argument(
        "--skip-requirements",
        action="store_true",
        help="package the app code without its dependencies (offline, for Terraform checks only: not deployable)",
    )
    parser.add_argument("--infra-only", action="store_true", help="only infra/ (the chalice-deploy path), into build/<stage>/infra")
    parser.add_argument(
        "--chalice-config",
        type=Path,
        metavar="OUTPUTS_JSON",
        help="merge `terraform output -json chalice_environment` (this file) into .chalice/config.json for the stage",
    )
    args = parser.parse_args(argv)
    try:
        if args.chalice_config:
            changed = chalice_config(args.stage, _read_outputs(args.chalice_config))
            summary = ", ".join(f"{k}={v}" for k, v in changed.items()) or "already up to date"
            print(f".chalice/config.json stage {args.stage}: {summary}")
            return 0
        if args.infra_only:
            out = args.out or ROOT / "build" / args.stage / "infra"
            infra_only(args.stage, out)
            print(f"infra/ for stage {args.stage} in {out}")
            return 0
        out = args.out or ROOT / "build" / args.stage / "terraform"
        template = package(args.stage, out, region=args.region, skip_requirements=args.skip_requirements)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(f"{h} ({f['trigger']})" for h, f in functions(template).items())
    print(f"packaged stage {args.stage} into {out}: functions {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
