"""`make package`: what chalice.tf.json and the override file hold after post-processing,
and the Terraform-generated roles' least privilege. Needs no terraform binary."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deploy import package as packaging
from deploy import policy as policies
from tests.conftest import ROOT
from tests.support.iam import allows

pytestmark = pytest.mark.slow

PROD_CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]


def policy_file(handler: str) -> str:
    """The policy Chalice gives a function: its own iam_policy_file, else the stage's."""
    return str(PROD_CONFIG.get("lambda_functions", {}).get(handler, {}).get("iam_policy_file") or PROD_CONFIG["iam_policy_file"])


REGION, ACCOUNT, SUFFIX = "us-east-1", "123456789012", "0a1b2c3d"


# What Terraform's references in the packaged policies resolve to at apply time.
APPLIED = {
    "${var.region}": REGION,
    "${data.aws_caller_identity.current.account_id}": ACCOUNT,
    "${aws_s3_bucket.uploads.bucket}": f"image-pipeline-prod-uploads-{SUFFIX}",
    "${aws_s3_bucket.processed.bucket}": f"image-pipeline-prod-processed-{SUFFIX}",
    "${aws_cloudfront_distribution.processed.id}": "E2EXAMPLE",
}


def as_applied(policy_text: str) -> dict[str, Any]:
    """A packaged role policy as IAM receives it from an apply in ACCOUNT."""
    assert set(APPLIED) == set(policies.TERRAFORM_VALUES.values())
    for reference, value in APPLIED.items():
        policy_text = policy_text.replace(reference, value)
    return dict(json.loads(policy_text))


def test_packaged_directory_holds_chalice_output_infra_and_overrides(packaged: tuple[Path, dict[str, Any]]) -> None:
    out, _ = packaged
    names = {p.name for p in out.iterdir()}
    assert {"chalice.tf.json", "deployment.zip", "package_override.tf.json"} <= names
    assert {p.name for p in (ROOT / "infra").glob("*.tf")} <= names


def test_deployment_zip_holds_the_lambda_code_and_no_dev_tools(packaged: tuple[Path, dict[str, Any]]) -> None:
    """Only code Lambda runs ships: app.py and every chalicelib module, and none of the local
    stack (devstack/), the command-line tools (tools/), tests, bench or deploy scripts."""
    out, _ = packaged
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = set(archive.namelist())
        code = {name: archive.read(name).decode() for name in names if name.endswith(".py") and name.startswith("chalicelib/")}
    shipped = {name for name in names if name.startswith("chalicelib/") and not name.endswith("/")}
    ours = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert "app.py" in names
    assert shipped == {n for n in ours if not n.endswith(".pyc")}
    assert {"chalicelib/reprocess.py", "chalicelib/settings.py", "chalicelib/gallery.html"} <= shipped
    top = {name.split("/", 1)[0] for name in names}
    assert not top & {"devstack", "tools", "tests", "bench", "deploy", "infra", "samples"}, sorted(top)
    assert not [n for n in names if n.startswith("chalicelib/local/")]
    # No command-line entry point rides along inside the package either.
    assert not [n for n, text in code.items() if "argparse" in text or n.endswith("__main__.py")]


def test_chalice_pins_and_null_provider_are_gone(packaged: tuple[Path, dict[str, Any]]) -> None:
    _, template = packaged
    assert "terraform" not in template  # required_version < 1.4, aws < 5: pinned in infra/versions.tf instead
    assert "null_data_source" not in template.get("data", {})
    assert "null" not in json.dumps(template.get("data", {}))


def test_app_settings_point_at_terraform_resources(packaged: tuple[Path, dict[str, Any]]) -> None:
    _, template = packaged
    for function in template["resource"]["aws_lambda_function"].values():
        env = function["environment"]["variables"]
        assert env["UPLOAD_BUCKET"] == "${aws_s3_bucket.uploads.bucket}"
        assert env["PROCESSED_BUCKET"] == "${aws_s3_bucket.processed.bucket}"
        assert env["CATALOG_TABLE"] == "${aws_dynamodb_table.catalog.name}"
        assert env["EVENTS_TOPIC"] == "${aws_sns_topic.events.name}"
        assert env["ALERTS_TOPIC_ARN"] == "${aws_sns_topic.alerts.arn}"
        assert env["CDN_DISTRIBUTION_ID"] == "${aws_cloudfront_distribution.processed.id}"  # DELETE invalidates there
        assert function["depends_on"] == ["aws_cloudwatch_log_group.functions"]
    # ...in the package only: the checked-in config keeps plain names for chalice deploy.
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert "${" not in json.dumps(config)


def test_one_notification_per_bucket_waits_for_every_s3_permission(packaged: tuple[Path, dict[str, Any]]) -> None:
    _, template = packaged
    notifications = template["resource"]["aws_s3_bucket_notification"]
    buckets = [n["bucket"] for n in notifications.values()]
    assert buckets == ["${aws_s3_bucket.uploads.bucket}"]  # a second one would silently replace the first
    (notification,) = notifications.values()
    s3_permissions = {
        f"aws_lambda_permission.{name}"
        for name, p in template["resource"]["aws_lambda_permission"].items()
        if p["principal"] == "s3.amazonaws.com"
    }
    assert s3_permissions and set(notification["depends_on"]) == s3_permissions
    handlers = {re.search(r"aws_lambda_function\.(\w+)\.", f["lambda_function_arn"]).group(1) for f in notification["lambda_function"]}  # type: ignore[union-attr]
    assert "process_upload" in handlers
    infra_text = "".join(p.read_text() for p in (ROOT / "infra").glob("*.tf"))
    assert "aws_s3_bucket_notification" not in infra_text


def test_two_s3_handlers_on_one_bucket_share_one_notification() -> None:
    """Chalice merges every handler of a bucket into one notification; post-processing
    must make it wait for all their permissions (issue 7 adds remove_renditions)."""
    template = {
        "terraform": {"required_version": "< 1.4.0"},
        "data": {"null_data_source": {"chalice": {}}},
        "resource": {
            "aws_lambda_function": {"process_upload": {"timeout": 120}, "remove_renditions": {"timeout": 30}},
            "aws_s3_bucket_notification": {
                "uploads_notify": {
                    "bucket": "${aws_s3_bucket.uploads.bucket}",
                    "lambda_function": [
                        {"events": ["s3:ObjectCreated:*"], "lambda_function_arn": "${aws_lambda_function.process_upload.arn}"},
                        {"events": ["s3:ObjectRemoved:*"], "lambda_function_arn": "${aws_lambda_function.remove_renditions.arn}"},
                    ],
                }
            },
            "aws_lambda_permission": {
                "process_upload-s3event": {"principal": "s3.amazonaws.com", "source_arn": "arn:aws:s3:::${aws_s3_bucket.uploads.bucket}"},
                "remove_renditions-s3event": {
                    "principal": "s3.amazonaws.com",
                    "source_arn": "arn:aws:s3:::${aws_s3_bucket.uploads.bucket}",
                },
            },
        },
    }
    fixed = packaging.fix_template(template)
    assert fixed["resource"]["aws_s3_bucket_notification"]["uploads_notify"]["depends_on"] == [
        "aws_lambda_permission.process_upload-s3event",
        "aws_lambda_permission.remove_renditions-s3event",
    ]
    assert packaging.functions(fixed) == {
        "process_upload": {"timeout": 120, "trigger": "async"},
        "remove_renditions": {"timeout": 30, "trigger": "async"},
    }


def test_a_bucket_terraform_does_not_create_is_refused() -> None:
    template = {"resource": {"aws_s3_bucket_notification": {"x_notify": {"bucket": "somebody-elses-bucket", "lambda_function": []}}}}
    with pytest.raises(packaging.PackageError, match="not a bucket infra/ creates"):
        packaging.fix_template(template)


def test_override_lists_the_apps_functions_and_their_async_settings(packaged: tuple[Path, dict[str, Any]]) -> None:
    out, template = packaged
    override = json.loads((out / "package_override.tf.json").read_text())
    functions = override["variable"]["functions"]["default"]
    assert set(functions) == set(template["resource"]["aws_lambda_function"])
    assert functions["process_upload"] == {"timeout": 120, "trigger": "async"}
    assert override["variable"]["configure_functions"]["default"] is True
    for_each = override["resource"]["aws_lambda_function_event_invoke_config"]["async"]["for_each"]
    for handler, f in functions.items():
        assert (f"aws_lambda_function.{handler}.function_name" in for_each) == (f["trigger"] == "async")


def test_repackaging_keeps_terraform_state(tmp_path: Path) -> None:
    out = tmp_path / "terraform"
    out.mkdir()
    (out / "terraform.tfstate").write_text("{}")
    (out / "stale.tf").write_text("# from an older package")
    packaging.package("prod", out, skip_requirements=True)
    assert (out / "terraform.tfstate").read_text() == "{}"
    assert not (out / "stale.tf").exists()


def test_unknown_stage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(packaging.PackageError, match=r"stage 'nope' is not in \.chalice/config\.json"):
        packaging.package("nope", tmp_path / "out", skip_requirements=True)


# ------------------------------------------------- least privilege of the roles


def test_generated_roles_carry_exactly_policy_prod(packaged: tuple[Path, dict[str, Any]]) -> None:
    """tests/functional/test_policy.py proves the prod policies allow every call the code
    makes; here: each role Terraform creates gets its function's policy and nothing else."""
    _, template = packaged
    resources = template["resource"]
    roles = resources["aws_iam_role"]
    assert set(roles) == set(resources["aws_iam_role_policy"])
    for handler, function in resources["aws_lambda_function"].items():
        name = function["role"].split(".")[1]
        trust = json.loads(roles[name]["assume_role_policy"])
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}], name
        # the checked-in template, its placeholders turned into exact Terraform references
        expected = policies.render((ROOT / ".chalice" / policy_file(handler)).read_text(), policies.TERRAFORM_VALUES)
        packaged_policy = resources["aws_iam_role_policy"][name]["policy"]
        assert json.loads(packaged_policy) == expected, handler
        assert policies.problems(as_applied(packaged_policy), REGION, ACCOUNT) == [], handler
    for kind in ("aws_iam_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        assert kind not in resources, f"{kind} would widen the roles beyond policy-prod.json"
    for function in resources["aws_lambda_function"].values():
        assert function["role"].startswith("${aws_iam_role.")


def test_roles_may_do_what_the_terraform_wiring_needs(packaged: tuple[Path, dict[str, Any]]) -> None:
    """Permissions no code call shows: the on-failure destination sends with the function's
    role, and an SQS trigger receives with it. Names as infra/ makes them for prod."""
    _, template = packaged
    resources = template["resource"]
    functions = packaging.functions(template)
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:image-pipeline-prod-{{}}"
    for handler, f in functions.items():
        role = resources["aws_lambda_function"][handler]["role"].split(".")[1]
        policy = as_applied(resources["aws_iam_role_policy"][role]["policy"])
        log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/image-pipeline-prod-{handler}:log-stream:x"
        assert allows(policy, "logs:PutLogEvents", log_group)
        if f["trigger"] == "async":
            assert allows(policy, "sqs:SendMessage", queue_arn.format("async-failures")), handler
        if f["trigger"] == "sqs":
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                assert allows(policy, action, queue_arn.format("reprocess")), (handler, action)
    # exactly the buckets Terraform creates (random suffix included), in this account only
    role = resources["aws_lambda_function"]["process_upload"]["role"].split(".")[1]
    policy = as_applied(resources["aws_iam_role_policy"][role]["policy"])
    assert policies.problems(policy, REGION, ACCOUNT) == []
    assert allows(policy, "s3:GetObject", f"arn:aws:s3:::image-pipeline-prod-uploads-{SUFFIX}/uploads/a.jpg")
    assert allows(policy, "s3:PutObject", f"arn:aws:s3:::image-pipeline-prod-processed-{SUFFIX}/renditions/a.jpg/w320.jpg")
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::image-pipeline-prod-processed-{SUFFIX}x/renditions/a.jpg/w320.jpg")
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::image-pipeline-prod-uploads-{SUFFIX}/uploads/a.jpg")
    assert not allows(policy, "sqs:SendMessage", queue_arn.format("reprocess"))


def test_chalice_config_writes_only_the_settings_the_stage_defines(tmp_path: Path) -> None:
    """`make chalice-config` (path 2): infra's names go into the stage, nothing else moves
    but the policy files, which point at copies rendered for the deployed account."""
    config = tmp_path / "config.json"
    original = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config.write_text(json.dumps(original))
    for name in policies.policy_files(PROD_CONFIG):
        (tmp_path / name).write_text((ROOT / ".chalice" / name).read_text())
    outputs = {
        "UPLOAD_BUCKET": "image-pipeline-prod-uploads-0a1b2c3d",
        "PROCESSED_BUCKET": "image-pipeline-prod-processed-0a1b2c3d",
        "CDN_DISTRIBUTION_ID": "E2EXAMPLE",
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID": ACCOUNT,
        "NOT_A_SETTING": "x",
        "UPLOAD_PREFIX": "uploads/",
    }
    changed = packaging.chalice_config("prod", outputs, config)
    assert changed == {
        "UPLOAD_BUCKET": "image-pipeline-prod-uploads-0a1b2c3d",
        "PROCESSED_BUCKET": "image-pipeline-prod-processed-0a1b2c3d",
        "CDN_DISTRIBUTION_ID": "E2EXAMPLE",
    }
    written = json.loads(config.read_text())
    assert "NOT_A_SETTING" not in written["stages"]["prod"]["environment_variables"]
    assert "AWS_REGION" not in written["stages"]["prod"]["environment_variables"]  # Lambda reserves it
    stage = original["stages"]["prod"]
    stage["environment_variables"].update(changed)
    stage["iam_policy_file"] = "policy-prod.rendered.json"
    stage["lambda_functions"]["api_handler"]["iam_policy_file"] = "policy-prod-api.rendered.json"
    assert written == original
    rendered = json.loads((tmp_path / "policy-prod.rendered.json").read_text())
    assert policies.problems(rendered, REGION, ACCOUNT) == []
    assert allows(rendered, "s3:GetObject", "arn:aws:s3:::image-pipeline-prod-uploads-0a1b2c3d/uploads/a.jpg")
    # run twice (infra re-applied): the stage keeps pointing at the rendered copies
    packaging.chalice_config("prod", outputs, config)
    assert json.loads(config.read_text()) == original
    with pytest.raises(packaging.PackageError, match="stage 'nope' is not in"):
        packaging.chalice_config("nope", outputs, config)
    with pytest.raises(packaging.PackageError, match="outputs lack AWS_ACCOUNT_ID"):
        packaging.chalice_config("prod", {**outputs, "AWS_ACCOUNT_ID": ""}, config)


def test_api_key_stage_gets_a_key_and_usage_plan(packaged: tuple[Path, dict[str, Any]]) -> None:
    """prod has WRITE_AUTH=api_key: Chalice marks the write routes api_key_required but makes
    no key, and API Gateway honours a key only through a usage plan on the stage."""
    out, template = packaged
    assert PROD_CONFIG["environment_variables"]["WRITE_AUTH"] == "api_key"
    api_key = json.loads((out / "api_key.tf.json").read_text())
    (plan,) = api_key["resource"]["aws_api_gateway_usage_plan"].values()
    stage = template["resource"]["aws_api_gateway_deployment"]["rest_api"]["stage_name"]
    assert plan["api_stages"] == [{"api_id": "${aws_api_gateway_rest_api.rest_api.id}", "stage": stage}]
    assert plan["depends_on"] == ["aws_api_gateway_deployment.rest_api"] and plan["throttle_settings"]
    (link,) = api_key["resource"]["aws_api_gateway_usage_plan_key"].values()
    assert (link["key_id"], link["usage_plan_id"]) == ("${aws_api_gateway_api_key.write.id}", "${aws_api_gateway_usage_plan.write.id}")
    assert api_key["output"]["write_api_key"]["sensitive"] is True
    # the write and read routes really ask API Gateway for a key (READ_AUTH=api_key, prod's
    # default); the gallery page and the terse health status do not
    swagger = json.loads(template["locals"]["chalice_api_swagger"])
    assert swagger["securityDefinitions"]["api_key"]["in"] == "header"
    keyed = {
        (path, verb) for path, ops in swagger["paths"].items() for verb, op in ops.items() if {"api_key": []} in op.get("security", [])
    }
    assert keyed == {
        ("/uploads", "post"),
        ("/images/{image_id}", "delete"),
        ("/images", "get"),
        ("/images/{image_id}", "get"),
        ("/images/{image_id}/similar", "get"),
        ("/health/details", "get"),
    }
    for mode in ("none", "iam"):
        assert packaging.write_api_key(template, mode) is None
    # READ_AUTH=api_key needs the same key and plan, whatever guards the writes
    assert packaging.key_auth({"WRITE_AUTH": "cognito", "READ_AUTH": "api_key"}) == "api_key"
    assert packaging.key_auth({"WRITE_AUTH": "cognito", "READ_AUTH": "cognito"}) == "none"
    assert packaging.write_api_key({"resource": {}}, "api_key") is None  # no routes, no API


def test_infra_only_is_infra_for_the_stage_and_keeps_state(tmp_path: Path) -> None:
    """`make infra` (path 2): infra/ alone, its stage set, state kept across runs."""
    out = tmp_path / "infra"
    out.mkdir()
    (out / "terraform.tfstate").write_text("{}")
    packaging.infra_only("prod", out)
    names = {p.name for p in out.iterdir()}
    own = {p.name for p in (ROOT / "infra").iterdir() if p.suffix == ".tf" or p.name == "terraform.tfvars"}
    assert names == own | {"stage_override.tf.json", "terraform.tfstate"}
    assert json.loads((out / "stage_override.tf.json").read_text()) == {"variable": {"stage": {"default": "prod"}}}


@pytest.mark.parametrize("step", ["package", "infra_only", "chalice_config"])
def test_the_local_stage_is_refused_with_the_stage_to_use(tmp_path: Path, step: str) -> None:
    """`make package` (STAGE defaults to dev) used to end in an 80-line traceback from Chalice's
    policy generator; `make chalice-config STAGE=dev` would overwrite the local stack's names."""
    config = tmp_path / "config.json"
    config.write_text((ROOT / ".chalice" / "config.json").read_text())
    calls = {
        "package": lambda: packaging.package("dev", tmp_path / "out", skip_requirements=True),
        "infra_only": lambda: packaging.infra_only("dev", tmp_path / "out"),
        "chalice_config": lambda: packaging.chalice_config("dev", {"UPLOAD_BUCKET": "x"}, config),
    }
    with pytest.raises(packaging.PackageError, match=r"stage 'dev' cannot be deployed: .* STAGE=prod"):
        calls[step]()
    assert config.read_text() == (ROOT / ".chalice" / "config.json").read_text()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [None, "not json {", '["UPLOAD_BUCKET"]'])
def test_chalice_config_with_an_unreadable_outputs_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    """A missing, truncated or non-object outputs file (terraform failed half-way, a typo in
    the path) is one error line naming the file, not a traceback; the config is untouched."""
    outputs = tmp_path / "chalice_environment.json"
    if content is not None:
        outputs.write_text(content)
    before = (ROOT / ".chalice" / "config.json").read_text()
    assert packaging.main(["--stage", "prod", "--chalice-config", str(outputs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(outputs) in err and "Traceback" not in err
    assert (ROOT / ".chalice" / "config.json").read_text() == before


def test_the_lambda_code_imports_nothing_that_is_not_deployed() -> None:
    """app.py and chalicelib/ must not import the dev stack, the tools or the tests: in Lambda
    that would be an ImportError at the first event (the zip holds none of them)."""
    import ast

    undeployed = {"devstack", "tools", "tests", "bench", "deploy"}
    offenders = []
    for path in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in undeployed]
    assert offenders == []


def test_a_cognito_stage_gets_the_user_pool_and_its_arn(packaged: tuple[Path, dict[str, Any]]) -> None:
    """WRITE_AUTH=cognito or READ_AUTH=cognito: the package turns on infra's user pool and
    the stage's COGNITO_USER_POOL_ARN becomes a reference to it (Chalice's authorizer reads
    it at import, into the swagger). prod (api_key) creates no pool."""
    _, template = packaged
    assert "cognito_user_pool" not in packaging.overrides(template, "prod")["variable"]
    for env in ({"WRITE_AUTH": "cognito"}, {"WRITE_AUTH": "api_key", "READ_AUTH": "cognito"}):
        assert packaging.overrides(template, "prod", env)["variable"]["cognito_user_pool"] == {"default": True}
    assert not packaging.uses_cognito({"WRITE_AUTH": "iam", "READ_AUTH": "api_key"})
    assert packaging.uses_cognito({"WRITE_AUTH": "iam", "COGNITO_USER_POOL_ARN": ""})  # its reference needs the pool
    env = packaging.referenced_environment({"WRITE_AUTH": "cognito", "COGNITO_USER_POOL_ARN": "", "PRESETS": "web"})
    assert env == {"WRITE_AUTH": "cognito", "COGNITO_USER_POOL_ARN": "${aws_cognito_user_pool.users[0].arn}", "PRESETS": "web"}


def test_read_routes_are_throttled_and_the_api_origin_allowed_to_upload(packaged: tuple[Path, dict[str, Any]]) -> None:
    """The override points infra/api.tf's throttling at Chalice's API and stage (through the
    deployment, which creates the stage) for every GET route, method paths as API Gateway
    spells them, and gives infra's upload CORS rule the API's origin instead of "*"."""
    out, template = packaged
    override = json.loads((out / "package_override.tf.json").read_text())
    assert override["locals"] == {
        "api_throttled": True,
        "api_id": "${aws_api_gateway_rest_api.rest_api.id}",
        "api_stage_name": "${aws_api_gateway_deployment.rest_api.stage_name}",
        "api_read_method_paths": [
            "~1/GET",
            "~1health/GET",
            "~1health~1details/GET",
            "~1images/GET",
            "~1images~1{image_id}/GET",
            "~1images~1{image_id}~1similar/GET",
        ],
        "api_origin": "https://${aws_api_gateway_rest_api.rest_api.id}.execute-api.${var.region}.amazonaws.com",
        "api_serves_gallery": True,
    }
    swagger = json.loads(template["locals"]["chalice_api_swagger"])
    gets = {path for path, ops in swagger["paths"].items() if "get" in ops}
    assert len(gets) == len(override["locals"]["api_read_method_paths"])
    assert packaging.api_locals({"resource": {}}) == {}
    # infra/ alone (path 2) knows the same routes (a new read route must be added there too)
    infra_api = (ROOT / "infra" / "api.tf").read_text()
    assert all(f'"{p}"' in infra_api for p in override["locals"]["api_read_method_paths"])
    block = re.search(r'variable "upload_cors_origins" \{.*?\n\}', (ROOT / "infra" / "variables.tf").read_text(), re.DOTALL)
    assert block and "default     = []" in block.group(0)
