"""The packaged Terraform with the real terraform binary (offline provider mirror), checkov,
and an apply against a moto server. Skipped with the reason where a tool is absent."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import package as packaging
from tests.conftest import ROOT
from tests.infra.conftest import copy_package, provider_for_moto, terraform, write_json

pytestmark = pytest.mark.slow

# Not applied against moto (validated and scanned all the same):
# - API Gateway REST API (when the app has routes): moto cannot import Chalice's swagger body.
# - S3 lifecycle rules and the reprocess queue's redrive policies: the provider polls until
#   the setting reads back the same six times in a row (about 25 s each, after the queues'
#   own 25 s); moto never returns RedriveAllowPolicy at all. Everything else applies.
GALLERY_ORIGIN = "https://abc123.execute-api.us-east-1.amazonaws.com"
NOT_APPLIED_ON_MOTO = re.compile(r"^(aws_api_gateway_\w+|aws_s3_bucket_lifecycle_configuration|aws_sqs_queue_redrive_\w+)\.")


def test_infra_is_terraform_fmt_clean(terraform_env: dict[str, str]) -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-recursive", str(ROOT / "infra")],
        env=terraform_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt infra`:\n{result.stdout}"


def test_packaged_prod_inits_offline_and_validates(
    packaged: tuple[Path, dict[str, Any]], terraform_env: dict[str, str], tmp_path: Path
) -> None:
    work = copy_package(packaged[0], tmp_path / "all-terraform")
    terraform(terraform_env, work, "init", "-backend=false", "-input=false")
    terraform(terraform_env, work, "validate")


def test_infra_alone_validates_and_knows_the_apps_functions(
    packaged: tuple[Path, dict[str, Any]], terraform_env: dict[str, str], tmp_path: Path
) -> None:
    """The chalice-deploy path applies infra/ by itself: it must stand alone, and its
    default function list (log groups, alarms) must match what the app really has."""
    work = tmp_path / "infra"
    work.mkdir()
    for tf in (ROOT / "infra").glob("*.tf"):
        (work / tf.name).write_text(tf.read_text())
    terraform(terraform_env, work, "init", "-backend=false", "-input=false")
    terraform(terraform_env, work, "validate")
    console = subprocess.run(
        ["terraform", "console"],
        input="jsonencode(var.functions)\n",
        cwd=work,
        env=terraform_env,
        capture_output=True,
        text=True,
        check=True,
    )
    defaults = json.loads(json.loads(console.stdout.strip()))
    assert defaults == packaging.functions(packaged[1]), 'update variable "functions" in infra/variables.tf to match the app'


def test_checkov_finds_nothing_beyond_the_documented_skips(packaged: tuple[Path, dict[str, Any]], checkov: Path) -> None:
    config = ROOT / ".checkov.yaml"
    skips = re.findall(r"^\s+- (CKV\w+)\s+# (.+)$", config.read_text(), re.MULTILINE)
    assert skips and all(len(reason) > 20 for _, reason in skips), "every skipped check needs a one-line reason"
    result = subprocess.run(
        [str(checkov), "-d", str(packaged[0]), "--config-file", str(config), "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"terraform", "terraform_json"}
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, f"checkov failures (fix, or skip in .checkov.yaml with a reason): {failed}"
    assert sum(r["summary"]["passed"] for r in reports) > 80
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)


def _targets(work: Path) -> list[str]:
    addresses = [
        f"{kind}.{name}" for kind, items in json.loads((work / "chalice.tf.json").read_text())["resource"].items() for name in items
    ]
    for tf in work.glob("*.tf"):
        addresses += [f"{kind}.{name}" for kind, name in re.findall(r'^resource "(\w+)" "(\w+)"', tf.read_text(), re.MULTILINE)]
    chalice = json.loads((work / "chalice.tf.json").read_text())["resource"]
    api_permissions = {
        f"aws_lambda_permission.{n}" for n, p in chalice.get("aws_lambda_permission", {}).items() if "apigateway" in p.get("principal", "")
    }
    return sorted(a for a in addresses if not NOT_APPLIED_ON_MOTO.match(a) and a not in api_permissions)


def test_packaged_prod_applies_against_moto(
    packaged: tuple[Path, dict[str, Any]], terraform_env: dict[str, str], moto_server: str, tmp_path: Path
) -> None:
    import boto3

    work = copy_package(packaged[0], tmp_path / "apply")
    write_json(work / "moto_override.tf.json", provider_for_moto(moto_server))
    # The API is not applied on moto: its origin (for the upload CORS rule) stands in. Named to
    # sort after package_override.tf.json, whose value it overrides.
    write_json(work / "zz_moto_override.tf.json", {"locals": {"api_origin": GALLERY_ORIGIN}})
    terraform(terraform_env, work, "init", "-backend=false", "-input=false")
    args = [f"-target={t}" for t in _targets(work)]
    terraform(
        terraform_env,
        work,
        "apply",
        "-auto-approve",
        "-input=false",
        "-parallelism=30",
        "-var=force_destroy=true",
        '-var=alert_emails=["ops@example.com"]',
        "-var=cognito_user_pool=true",
        *args,
    )
    outputs = {k: v["value"] for k, v in json.loads(terraform(terraform_env, work, "output", "-json").stdout).items()}

    def client(name: str) -> Any:
        return boto3.client(
            name, endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )

    s3, ddb, sns, cw, lam, logs, cloudfront = (client(n) for n in ("s3", "dynamodb", "sns", "cloudwatch", "lambda", "logs", "cloudfront"))

    # buckets: random suffix, private, encrypted, versioned, TLS only
    uploads, processed = outputs["upload_bucket"], outputs["processed_bucket"]
    assert re.fullmatch(r"image-pipeline-prod-uploads-[0-9a-f]{8}", uploads)
    assert processed == uploads.replace("-uploads-", "-processed-")
    for bucket in (uploads, processed):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), block
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    # the gallery's browser may POST presigned forms to the upload bucket, from the API's
    # origin only (it serves the gallery), and do nothing else
    (cors,) = s3.get_bucket_cors(Bucket=uploads)["CORSRules"]
    assert (cors["AllowedMethods"], cors["AllowedOrigins"]) == (["POST"], [GALLERY_ORIGIN])

    # one notification on the upload bucket, to the processor, for uploads/ only
    notification = s3.get_bucket_notification_configuration(Bucket=uploads)["LambdaFunctionConfigurations"]
    wanted = [
        (f["events"], re.sub(r"\$\{aws_lambda_function\.(\w+)\.arn\}", r"image-pipeline-prod-\1", f["lambda_function_arn"]))
        for n in packaged[1]["resource"]["aws_s3_bucket_notification"].values()
        for f in n["lambda_function"]
    ]
    assert sorted((n["Events"], n["LambdaFunctionArn"].rsplit(":", 1)[-1]) for n in notification) == sorted(wanted)
    created = [n for n in notification if "s3:ObjectCreated:*" in n["Events"]]
    assert len(created) == 1 and created[0]["LambdaFunctionArn"].endswith(":function:image-pipeline-prod-process_upload")
    assert [(r["Name"].lower(), r["Value"]) for r in created[0]["Filter"]["Key"]["FilterRules"]] == [("prefix", "uploads/")]

    # the table with the contract's indexes
    table = ddb.describe_table(TableName="image-pipeline-prod-catalog")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "image_id", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert [k["AttributeName"] for k in indexes["by_updated"]["KeySchema"]] == ["listing", "updated_at"]
    assert [k["AttributeName"] for k in indexes["by_status"]["KeySchema"]] == ["status", "updated_at"]
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in indexes.values())
    backups = ddb.describe_continuous_backups(TableName="image-pipeline-prod-catalog")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    # topics: events encrypted, alerts with the e-mail subscription; notify subscribed to events
    events_arn, alerts_arn = outputs["events_topic_arn"], outputs["alerts_topic_arn"]
    assert sns.get_topic_attributes(TopicArn=events_arn)["Attributes"]["KmsMasterKeyId"] == "alias/aws/sns"
    assert [(s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions_by_topic(TopicArn=alerts_arn)["Subscriptions"]] == [
        ("email", "ops@example.com")
    ]
    assert [s["Endpoint"].rsplit(":", 1)[-1] for s in sns.list_subscriptions_by_topic(TopicArn=events_arn)["Subscriptions"]] == [
        "image-pipeline-prod-notify"
    ]

    # functions: real names in their environment, async failures to the queue, log retention
    env = lam.get_function_configuration(FunctionName="image-pipeline-prod-process_upload")["Environment"]["Variables"]
    assert (env["UPLOAD_BUCKET"], env["PROCESSED_BUCKET"], env["ALERTS_TOPIC_ARN"]) == (uploads, processed, alerts_arn)
    assert env["EVENTS_TOPIC"] == "image-pipeline-prod-events" and env["CATALOG_TABLE"] == "image-pipeline-prod-catalog"
    # every S3/SNS-triggered function: bounded retries, then the async-failures queue
    for handler, f in packaging.functions(packaged[1]).items():
        if f["trigger"] != "async":
            continue
        invoke = lam.get_function_event_invoke_config(FunctionName=f"image-pipeline-prod-{handler}")
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"].endswith(":image-pipeline-prod-async-failures"), handler
        assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (2, 3600), handler
    (mapping,) = lam.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["EventSourceArn"].endswith(":image-pipeline-prod-reprocess")
    assert mapping["FunctionArn"].endswith(":function:image-pipeline-prod-reprocess")
    groups = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/image-pipeline-prod")["logGroups"]
    }
    functions = packaged[1]["resource"]["aws_lambda_function"]
    assert groups == {f"/aws/lambda/{f['function_name']}": 7 for f in functions.values()}
    filters = logs.describe_metric_filters(logGroupName="/aws/lambda/image-pipeline-prod-process_upload")["metricFilters"]
    assert {f["metricTransformations"][0]["metricName"] for f in filters} >= {
        "Processed",
        "Rejected",
        "Failed",
        "ProcessingTime",
        "EventsMalformed",
    }
    for handler in ("remove_renditions", "notify", "reprocess"):  # each drops malformed events too
        group = f"/aws/lambda/image-pipeline-prod-{handler}"
        assert "EventsMalformed" in {
            f["metricTransformations"][0]["metricName"] for f in logs.describe_metric_filters(logGroupName=group)["metricFilters"]
        }

    # alarms: each kind, to the alerts topic, with OK actions too
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNamePrefix="image-pipeline-prod")["MetricAlarms"]}
    for name in (
        "image-pipeline-prod-process_upload-errors",
        "image-pipeline-prod-process_upload-throttles",
        "image-pipeline-prod-process_upload-duration-p95",
        "image-pipeline-prod-async-failures-not-empty",
        "image-pipeline-prod-reprocess-dlq-not-empty",
        "image-pipeline-prod-rejected-rate",
        "image-pipeline-prod-publish-failures",
        "image-pipeline-prod-malformed-events",
    ):
        assert alarms[name]["AlarmActions"] == [alerts_arn] and alarms[name]["OKActions"] == [alerts_arn], name
    malformed = alarms["image-pipeline-prod-malformed-events"]  # any malformed event in 5 minutes
    assert (malformed["Namespace"], malformed["MetricName"], malformed["Statistic"]) == ("ImagePipeline/prod", "EventsMalformed", "Sum")
    assert (malformed["Period"], malformed["EvaluationPeriods"], malformed["ComparisonOperator"], malformed["Threshold"]) == (
        300,
        1,
        "GreaterThanThreshold",
        0,
    )
    assert alarms["image-pipeline-prod-process_upload-duration-p95"]["Threshold"] == 120 * 1000 * 0.8
    assert cw.get_dashboard(DashboardName="image-pipeline-prod")["DashboardBody"]
    rate = {q["Id"]: q for q in alarms["image-pipeline-prod-rejected-rate"]["Metrics"]}
    assert [q["Id"] for q in rate.values() if q.get("ReturnData", True)] == ["rate"]
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in rate.values() if "MetricStat" in q} == {"Processed", "Rejected"}

    # CDN: the private processed bucket behind origin access control, HTTPS only, compressed;
    # the bucket policy lets exactly this distribution read renditions/
    (summary,) = cloudfront.list_distributions()["DistributionList"]["Items"]
    assert outputs["cloudfront_domain"] == summary["DomainName"]
    config = cloudfront.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
    (origin,) = config["Origins"]["Items"]
    assert origin["DomainName"].startswith(f"{processed}.s3.")
    # moto does not echo the origin's OriginAccessControlId; the control itself must exist
    (oac,) = cloudfront.list_origin_access_controls()["OriginAccessControlList"]["Items"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == ("s3", "always", "sigv4")
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only" and behavior["Compress"] is True
    grant = [s for s in json.loads(s3.get_bucket_policy(Bucket=processed)["Policy"])["Statement"] if s["Effect"] == "Allow"]
    assert [(g["Principal"], g["Resource"], g["Condition"]["StringEquals"]["AWS:SourceArn"]) for g in grant] == [
        ({"Service": "cloudfront.amazonaws.com"}, f"arn:aws:s3:::{processed}/renditions/*", summary["ARN"])
    ]
    assert outputs["dashboard_url"].endswith("#dashboards:name=image-pipeline-prod")

    # Cognito (cognito_user_pool=true): the pool, its admins group and a secretless app
    # client; its ARN reaches the app's settings through chalice_environment
    idp = client("cognito-idp")
    (pool,) = idp.list_user_pools(MaxResults=10)["UserPools"]
    assert pool["Name"] == "image-pipeline-prod-users" and outputs["cognito_user_pool_arn"].endswith(f"/{pool['Id']}")
    described = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
    assert described["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert [g["GroupName"] for g in idp.list_groups(UserPoolId=pool["Id"])["Groups"]] == ["admins"]
    (app_client,) = idp.list_user_pool_clients(UserPoolId=pool["Id"])["UserPoolClients"]
    assert app_client["ClientId"] == outputs["cognito_app_client_id"]
    assert "ClientSecret" not in idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=app_client["ClientId"])["UserPoolClient"]
    assert outputs["chalice_environment"]["COGNITO_USER_POOL_ARN"] == outputs["cognito_user_pool_arn"]
    # the distribution DELETE invalidates, for the setting and the rendered IAM policies
    assert outputs["chalice_environment"]["CDN_DISTRIBUTION_ID"] == summary["Id"] == outputs["cloudfront_distribution_id"]
    handler_env = lam.get_function_configuration(FunctionName="image-pipeline-prod-remove_renditions")["Environment"]["Variables"]
    assert handler_env["CDN_DISTRIBUTION_ID"] == summary["Id"]
    assert outputs["chalice_environment"]["AWS_ACCOUNT_ID"] == "123456789012"

    # the roles' policies as IAM holds them: exact buckets, our region and account, our distribution
    from deploy import policy as policies
    from tests.support.iam import allows

    iam = client("iam")
    for name, role_policy in packaged[1]["resource"]["aws_iam_role_policy"].items():
        role = packaged[1]["resource"]["aws_iam_role"][name]["name"]
        document = iam.get_role_policy(RoleName=role, PolicyName=role_policy["name"])["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        assert policies.problems(document, "us-east-1", "123456789012") == [], role
        text = json.dumps(document)
        assert f"arn:aws:s3:::{uploads}" in text and "prod-uploads*" not in text and "prod-processed*" not in text, role
        assert allows(document, "cloudfront:CreateInvalidation", f"arn:aws:cloudfront::123456789012:distribution/{summary['Id']}"), role

    # path 2's glue: `make chalice-config` turns this very output into the stage's settings,
    # which the app accepts (a copy of .chalice/config.json stands in for the real one)
    from chalicelib.settings import Settings

    config = tmp_path / "config.json"
    config.write_text((ROOT / ".chalice" / "config.json").read_text())
    for name in ("policy-prod.json", "policy-prod-api.json"):
        (tmp_path / name).write_text((ROOT / ".chalice" / name).read_text())
    changed = packaging.chalice_config("prod", outputs["chalice_environment"], config)
    assert changed["UPLOAD_BUCKET"] == uploads and changed["ALERTS_TOPIC_ARN"] == alerts_arn
    env = json.loads(config.read_text())["stages"]["prod"]["environment_variables"]
    settings = Settings.from_env(env)
    assert (settings.upload_bucket, settings.processed_bucket, settings.reprocess_queue) == (
        uploads,
        processed,
        "image-pipeline-prod-reprocess",
    )
    assert settings.cdn_domain == outputs["cloudfront_domain"]


def test_packaged_prod_plan_throttles_reads_and_limits_upload_cors(
    packaged: tuple[Path, dict[str, Any]], terraform_env: dict[str, str], moto_server: str, tmp_path: Path
) -> None:
    """`terraform plan` of the whole package (the API included, which moto cannot apply):
    every read route is throttled by API Gateway, no write route is, and the upload bucket's
    CORS rule names the API's origin, never "*"."""
    work = copy_package(packaged[0], tmp_path / "plan")
    write_json(work / "moto_override.tf.json", provider_for_moto(moto_server))
    terraform(terraform_env, work, "init", "-backend=false", "-input=false")
    terraform(terraform_env, work, "plan", "-input=false", "-out=plan.bin", "-var=api_read_rate_limit=15")
    plan = json.loads(terraform(terraform_env, work, "show", "-json", "plan.bin").stdout)
    changes = {c["address"]: c["change"] for c in plan["resource_changes"]}

    settings = {a: c["after"] for a, c in changes.items() if a.startswith("aws_api_gateway_method_settings.")}
    assert {s["method_path"] for s in settings.values()} == {
        "~1/GET",
        "~1images/GET",
        "~1images~1{image_id}/GET",
        "~1images~1{image_id}~1similar/GET",
        "~1health/GET",
        "~1health~1details/GET",
    }
    for after in settings.values():
        assert after["stage_name"] == "api"
        (throttle,) = after["settings"]
        assert (throttle["throttling_rate_limit"], throttle["throttling_burst_limit"]) == (15, 6)
    assert not [s for s in settings.values() if s["method_path"].endswith(("/POST", "/DELETE", "*/*"))]
    # every read route bursting at once still leaves the writes part of the API function's
    # reserved concurrency (at least 10 of prod's 50)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    reserved = config["stages"]["prod"]["lambda_functions"]["api_handler"]["reserved_concurrency"]
    assert sum(s["settings"][0]["throttling_burst_limit"] for s in settings.values()) <= reserved - 10

    cors = changes["aws_s3_bucket_cors_configuration.uploads[0]"]
    assert cors["after_unknown"]["cors_rule"][0]["allowed_origins"] is True  # the API's id, known at apply
    assert cors["after"]["cors_rule"][0].get("allowed_origins") is None  # not "*", nor any fixed value
    assert cors["after"]["cors_rule"][0]["allowed_methods"] == ["POST"]
    assert not [a for a in changes if a.startswith("aws_cognito_")]  # prod does not use cognito

    # the chalice-deploy path: infra/ alone throttles the API named by rest_api_id, and only then
    alone = tmp_path / "infra"
    alone.mkdir()
    for tf in (ROOT / "infra").glob("*.tf"):
        (alone / tf.name).write_text(tf.read_text())
    write_json(alone / "moto_override.tf.json", provider_for_moto(moto_server))
    terraform(terraform_env, alone, "init", "-backend=false", "-input=false")
    for args, expected in (([], set()), (["-var=rest_api_id=abc123"], {s["method_path"] for s in settings.values()})):
        terraform(terraform_env, alone, "plan", "-input=false", "-out=plan.bin", *args)
        changes = {
            c["address"]: c["change"]["after"]
            for c in json.loads(terraform(terraform_env, alone, "show", "-json", "plan.bin").stdout)["resource_changes"]
        }
        reads = [a for a in changes.values() if "method_path" in a]
        assert {a["method_path"] for a in reads} == expected
        assert all((a["rest_api_id"], a["stage_name"]) == ("abc123", "api") for a in reads)
        assert not [a for a in changes if a.startswith("aws_s3_bucket_cors_configuration.")]  # no origin known: no rule
