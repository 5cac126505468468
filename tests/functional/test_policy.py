"""Least privilege: every AWS call the code makes under the prod stage's names is allowed
by its function's policy (.chalice/policy-prod.json for the event handlers,
.chalice/policy-prod-api.json for the REST API handler, both rendered by deploy/policy.py
for one account and region), and no policy grants anything broad or another account's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest

from deploy import policy as policies
from tests.conftest import ROOT, create_catalog_table, fixture_bytes
from tests.support.iam import allows

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY_FILES = {"handlers": "policy-prod.json", "api": "policy-prod-api.json"}
TEMPLATES = {role: (ROOT / ".chalice" / name).read_text() for role, name in POLICY_FILES.items()}
PROD = CONFIG["stages"]["prod"]["environment_variables"]
REGION, ACCOUNT, DISTRIBUTION = "us-east-1", "123456789012", "E2EXAMPLE0DIST"
VALUES = {
    "region": REGION,
    "account": ACCOUNT,
    "upload_bucket": PROD["UPLOAD_BUCKET"],
    "processed_bucket": PROD["PROCESSED_BUCKET"],
    "cdn_distribution": DISTRIBUTION,
}
POLICIES = {role: policies.render(text, VALUES) for role, text in TEMPLATES.items()}
POLICY = POLICIES["handlers"]

# boto3 operation -> (IAM action, resource ARN template). An operation missing here fails
# the test: add it (and to the policy) consciously.
ACTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("s3", "HeadObject"): ("s3:GetObject", "arn:aws:s3:::{Bucket}/{Key}"),
    ("s3", "GetObject"): ("s3:GetObject", "arn:aws:s3:::{Bucket}/{Key}"),
    ("s3", "PutObject"): ("s3:PutObject", "arn:aws:s3:::{Bucket}/{Key}"),
    ("s3", "DeleteObjects"): ("s3:DeleteObject", "arn:aws:s3:::{Bucket}/{Key}"),  # checked per key
    ("s3", "PutObjectTagging"): ("s3:PutObjectTagging", "arn:aws:s3:::{Bucket}/{Key}"),
    ("dynamodb", "GetItem"): ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    ("dynamodb", "PutItem"): ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    ("dynamodb", "DeleteItem"): ("dynamodb:DeleteItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    # the near-duplicate index (ADD/DELETE on band sets, one batch read) and the form nonces
    ("dynamodb", "UpdateItem"): ("dynamodb:UpdateItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    ("dynamodb", "BatchGetItem"): ("dynamodb:BatchGetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    ("sns", "Publish"): ("sns:Publish", "{TopicArn}"),
    ("sts", "GetCallerIdentity"): ("", ""),  # always allowed, needs no permission
    ("s3", "PresignedPost"): ("s3:PutObject", "arn:aws:s3:::{Bucket}/{Key}"),  # recorded by the fixture: a form, no API call
    # the API (presigned GETs go through the same parameter hook, so they are checked too)
    ("s3", "HeadBucket"): ("s3:ListBucket", "arn:aws:s3:::{Bucket}"),
    ("dynamodb", "Query"): ("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}/index/{{IndexName}}"),
    ("dynamodb", "DescribeTable"): ("dynamodb:DescribeTable", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{TableName}}"),
    ("sns", "GetTopicAttributes"): ("sns:GetTopicAttributes", "{TopicArn}"),
    # DELETE (and a source removed from S3) invalidates the image's paths on the CDN
    ("cloudfront", "CreateInvalidation"): (
        "cloudfront:CreateInvalidation",
        f"arn:aws:cloudfront::{ACCOUNT}:distribution/{{DistributionId}}",
    ),
}


def allowed(action: str, resource: str, policy: dict[str, Any] = POLICY) -> bool:
    return allows(policy, action, resource)


def leading_keys(params: dict[str, Any]) -> list[str]:
    """The partition keys a DynamoDB item call touches (for dynamodb:LeadingKeys)."""
    if "RequestItems" in params:
        return [k["image_id"]["S"] for batch in params["RequestItems"].values() for k in batch["Keys"]]
    item = params.get("Item") or params.get("Key")
    return [item["image_id"]["S"]] if isinstance(item, dict) and "image_id" in item else []


@pytest.mark.parametrize("role", sorted(POLICIES))
def test_policy_has_no_wildcard_actions_or_resources(role: str) -> None:
    for statement in POLICIES[role]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(r not in ("*", "arn:aws:s3:::*") for r in resources), statement


@pytest.mark.parametrize("role", sorted(POLICIES))
def test_no_resource_could_be_another_accounts(role: str) -> None:
    """S3 names are global: `image-pipeline-prod-processed*` also matched a bucket anyone may
    create in another account, and `arn:aws:dynamodb:*:*:` a table of that name anywhere. The
    templates name exact buckets, region and account (placeholders), S3 statements carry an
    account condition, and rendering refuses anything else."""
    assert policies.problems(POLICIES[role], REGION, ACCOUNT) == []
    for statement in POLICIES[role]["Statement"]:
        if any(r.startswith("arn:aws:s3:::") for r in policies.listed(statement["Resource"])):
            assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": ACCOUNT}}, statement["Sid"]
    # a bucket of the same name prefix in someone else's account is no longer ours
    suffixed = f"arn:aws:s3:::{PROD['PROCESSED_BUCKET']}-attacker/{PROD['OUTPUT_PREFIX']}x.jpg"
    assert not allowed("s3:PutObject", suffixed) and not allowed("s3:GetObject", suffixed, POLICIES["api"])


def test_the_pinning_check_catches_wildcards() -> None:
    """The check itself: the statements the prod policies held before, each caught."""

    def statement(resource: str, **extra: Any) -> dict[str, Any]:
        return {"Statement": [{"Sid": "S", "Effect": "Allow", "Action": ["x:Y"], "Resource": resource, **extra}]}

    condition = {"Condition": {"StringEquals": {"s3:ResourceAccount": ACCOUNT}}}
    caught = [
        statement("arn:aws:s3:::image-pipeline-prod-processed*/renditions/*"),
        statement("arn:aws:s3:::image-pipeline-prod-uploads*"),
        statement("arn:aws:s3:::image-pipeline-prod-uploads*", Condition={"StringEquals": {"s3:ResourceAccount": "999999999999"}}),
        statement("arn:aws:dynamodb:*:*:table/image-pipeline-prod-catalog*"),
        statement(f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/image-pipeline-prod-catalog"),
        statement("arn:aws:sqs:*:*:image-pipeline-prod-reprocess"),
        statement("arn:aws:logs:*:*:log-group:/aws/lambda/image-pipeline-prod-*"),
        statement(f"arn:aws:logs:{REGION}:*:log-group:/aws/lambda/image-pipeline-prod-*"),
        statement("arn:aws:sns:*:*:image-pipeline-prod-events*"),
        statement("arn:aws:cloudfront::*:distribution/*"),
        statement("*"),
    ]
    for doc in caught:
        assert policies.problems(doc, REGION, ACCOUNT), doc
    fine = [
        statement("arn:aws:s3:::image-pipeline-prod-uploads*", **condition),
        statement(f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/uploads/*"),
        statement(f"arn:aws:sqs:{REGION}:{ACCOUNT}:image-pipeline-prod-reprocess"),
        statement(f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION}"),
    ]
    assert [policies.problems(doc, REGION, ACCOUNT) for doc in fine] == [[]] * len(fine)
    with pytest.raises(policies.PolicyError, match="not pinned"):
        policies.checked(caught[3], VALUES)
    with pytest.raises(policies.PolicyError, match=r"\{bucket\} has no value"):
        policies.render('{"Resource": "arn:aws:s3:::{bucket}"}', VALUES)


def test_deleted_images_may_be_invalidated_on_our_distribution_only() -> None:
    distribution = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION}"
    for policy in POLICIES.values():
        assert allowed("cloudfront:CreateInvalidation", distribution, policy)
        assert not allowed("cloudfront:CreateInvalidation", f"arn:aws:cloudfront::{ACCOUNT}:distribution/EOTHER", policy)
        assert not allowed("cloudfront:UpdateDistribution", distribution, policy)


def test_prod_names_fall_under_the_policy() -> None:
    assert allowed("s3:GetObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}x.jpg")
    assert allowed("s3:PutObject", f"arn:aws:s3:::{PROD['PROCESSED_BUCKET']}/{PROD['OUTPUT_PREFIX']}x.jpg/w320.jpg")
    assert not allowed("s3:PutObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}x.jpg")
    assert not allowed("s3:GetObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/private/x.jpg")
    # the reprocess function's event source mapping polls the queue with the function's role
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PROD['REPROCESS_QUEUE']}"
    assert all(allowed(a, queue) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"))
    assert not allowed("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:someone-elses-queue")
    # presigned upload forms are signed by the API's own role: under the prefix only; the API
    # can neither write renditions nor read sources, and nothing may Scan the catalog
    api = POLICIES["api"]
    assert allowed("s3:PutObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}2026-01-01/x.jpg", api)
    assert not allowed("s3:PutObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/elsewhere/x.jpg", api)
    assert not allowed("s3:PutObject", f"arn:aws:s3:::{PROD['PROCESSED_BUCKET']}/{PROD['OUTPUT_PREFIX']}x.jpg/w320.jpg", api)
    assert not allowed("s3:GetObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}x.jpg", api)
    for policy in POLICIES.values():
        assert not allowed("dynamodb:Scan", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PROD['CATALOG_TABLE']}", policy)


def test_the_api_handler_gets_its_own_policy() -> None:
    from chalice.config import Config

    def policy_file(function: str) -> str | None:
        return Config(chalice_stage="prod", function_name=function, config_from_disk=CONFIG).iam_policy_file

    assert CONFIG["stages"]["prod"]["autogen_policy"] is False
    assert policy_file("api_handler") == POLICY_FILES["api"]
    assert policy_file("process_upload") in (None, POLICY_FILES["handlers"])  # None: Chalice's default policy-prod.json


@pytest.fixture
def prod_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str, dict[str, Any]]]]:
    """Run the real handlers and API routes against moto with the prod names, recording every
    AWS call with the role ("handlers" or "api") of the function making it."""
    import boto3
    import requests
    from moto import mock_aws

    import app
    from chalicelib import api
    from chalicelib import aws as aws_clients
    from chalicelib.adapters import Adapters
    from chalicelib.catalog import DynamoCatalog
    from chalicelib.links import S3Links
    from chalicelib.notify import SnsNotifier
    from chalicelib.probe import AwsProbe
    from chalicelib.settings import Settings
    from chalicelib.storage import S3ObjectStore

    calls: list[tuple[str, str, str, dict[str, Any]]] = []
    role = ["handlers"]  # None while the test itself talks to S3

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        if role[0]:
            calls.append((role[0], model.service_model.endpoint_prefix, model.name, dict(params)))

    env = {
        **PROD,
        "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:image-pipeline-prod-alerts",
        "AWS_REGION": REGION,
        "CDN_DISTRIBUTION_ID": DISTRIBUTION,
    }
    settings = Settings.from_env(env)
    with mock_aws():
        aws_clients.reset()
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (settings.upload_bucket, settings.processed_bucket):
            s3.create_bucket(Bucket=bucket)
        create_catalog_table(boto3.client("dynamodb", region_name=REGION), settings.catalog_table)
        sns = boto3.client("sns", region_name=REGION)
        sns.create_topic(Name=settings.events_topic)
        sns.create_topic(Name="image-pipeline-prod-alerts")
        clients = {name: aws_clients.client(name, REGION) for name in ("s3", "dynamodb", "sns", "sts")}
        for c in clients.values():
            c.meta.events.register("before-parameter-build.*.*", record)
        clients["presigner"] = aws_clients.s3_presigner(REGION)
        # botocore builds presigned POST forms from the CreateBucket model (no call is made):
        # the form is recorded below as PresignedPost with its key instead.
        clients["presigner"].meta.events.register(
            "before-parameter-build.s3.*", lambda model, params, **kw: None if model.name == "CreateBucket" else record(model, params)
        )
        pipeline = Adapters(
            settings=settings,
            profile=app.profile,
            store=S3ObjectStore(clients["s3"]),
            catalog=DynamoCatalog(clients["dynamodb"], settings.catalog_table),
            notifier=SnsNotifier(clients["sns"], clients["sts"], REGION),
        )
        notifier = SnsNotifier(clients["sns"], clients["sts"], REGION)
        context = api.Api(
            settings,
            app.profile,
            pipeline.catalog,
            pipeline.store,
            S3Links(clients["presigner"]),
            AwsProbe(clients.__getitem__, notifier.topic_arn),
        )
        monkeypatch.setattr(app, "pipeline", lambda: pipeline)
        monkeypatch.setattr(app, "api_context", lambda: context)
        from chalice.test import Client

        with Client(app.app) as client:
            for key, data in (("uploads/ok.jpg", fixture_bytes("orient_landscape_1.jpg")), ("uploads/bad.jpg", b"nope")):
                for _ in range(2):  # the second pass overwrites and deletes stale renditions
                    s3.put_object(Bucket=settings.upload_bucket, Key=key, Body=data)
                    client.lambda_.invoke(
                        "process_upload", client.events.generate_s3_event(bucket=settings.upload_bucket, key=quote_plus(key))
                    )
            # a good image replaced by a bad one removes the old renditions
            s3.put_object(Bucket=settings.upload_bucket, Key="uploads/ok.jpg", Body=b"nope")
            client.lambda_.invoke("process_upload", client.events.generate_s3_event(bucket=settings.upload_bucket, key="uploads/ok.jpg"))
            client.lambda_.invoke(
                "notify", client.events.generate_sns_event(message=json.dumps({"type": "image.rejected", "source_key": "k"}))
            )
            # a source deleted by its owner: renditions removed, record marked
            s3.put_object(Bucket=settings.upload_bucket, Key="uploads/gone.jpg", Body=fixture_bytes("orient_landscape_1.jpg"))
            client.lambda_.invoke("process_upload", client.events.generate_s3_event(bucket=settings.upload_bucket, key="uploads/gone.jpg"))
            s3.delete_object(Bucket=settings.upload_bucket, Key="uploads/gone.jpg")
            client.lambda_.invoke(
                "remove_renditions",
                client.events.generate_s3_event(bucket=settings.upload_bucket, key="uploads/gone.jpg", event_name="ObjectRemoved:Delete"),
            )
            # a reprocess job from the queue
            s3.put_object(Bucket=settings.upload_bucket, Key="uploads/again.jpg", Body=fixture_bytes("orient_landscape_2.jpg"))
            job = json.dumps({"bucket": settings.upload_bucket, "key": "uploads/again.jpg", "profile_version": "x"})
            client.lambda_.invoke("reprocess", client.events.generate_sqs_event([job], queue_name=settings.reprocess_queue))
            # every API route, through an upload made with the presigned form
            role[0] = "api"
            ticket = json.loads(
                client.http.post(
                    "/uploads",
                    body=json.dumps({"filename": "api.jpg", "content_type": "image/jpeg"}),
                    headers={"Content-Type": "application/json"},
                ).body
            )
            form = ticket["upload"]
            policy_conditions = json.loads(__import__("base64").b64decode(form["fields"]["policy"]))["conditions"]
            calls.append(
                ("api", "s3", "PresignedPost", {"Bucket": settings.upload_bucket, "Key": ticket["key"], "conditions": policy_conditions})
            )
            role[0] = ""  # the client's own POST to S3 (moto routes it through botocore's hooks)
            requests.post(
                form["url"], data=form["fields"], files={"file": ("api.jpg", fixture_bytes("orient_landscape_1.jpg"))}, timeout=10
            )
            role[0] = "handlers"
            client.lambda_.invoke(
                "process_upload", client.events.generate_s3_event(bucket=settings.upload_bucket, key=quote_plus(ticket["key"]))
            )
            role[0] = "api"
            for path in (
                "/images",
                "/images?status=processed",
                f"/images/{ticket['image_id']}",
                f"/images/{ticket['image_id']}/similar",
                "/health",
                "/health/details",
            ):
                assert client.http.get(path).status_code == 200, path
            assert client.http.delete(f"/images/{ticket['image_id']}?source=true").status_code == 200
        yield calls
        aws_clients.reset()


def test_every_call_the_code_makes_is_allowed(prod_calls: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    seen = {(role, service, op) for role, service, op, _ in prod_calls}
    assert {
        ("handlers", "s3", "HeadObject"),
        ("handlers", "s3", "GetObject"),
        ("handlers", "s3", "PutObject"),
        ("handlers", "s3", "DeleteObjects"),
        ("handlers", "sns", "Publish"),
        ("handlers", "dynamodb", "PutItem"),
        ("handlers", "dynamodb", "UpdateItem"),  # band sets and claiming the upload form's nonce
        ("handlers", "dynamodb", "BatchGetItem"),
        ("api", "dynamodb", "BatchGetItem"),
        ("api", "dynamodb", "UpdateItem"),
        ("api", "dynamodb", "PutItem"),  # recording the form's nonce
        ("api", "dynamodb", "Query"),
        ("api", "dynamodb", "DescribeTable"),
        ("api", "dynamodb", "PutItem"),  # DELETE writes a tombstone
        ("api", "s3", "HeadBucket"),
        ("api", "s3", "GetObject"),  # presigned GET of a rendition
        ("api", "s3", "PresignedPost"),
        ("api", "s3", "DeleteObjects"),
        ("api", "sns", "GetTopicAttributes"),
    } <= seen
    queried = {params["IndexName"] for _, service, op, params in prod_calls if op == "Query"}
    assert queried == {"by_updated", "by_status"}
    assert all(op != "Scan" for _, _, op, _ in prod_calls)
    # UpdateItem is granted only on the duplicate index's band items (`phash#`) and, for the
    # processor, the form nonces it claims (`form#`): dynamodb:LeadingKeys, evaluated below.
    updated = {(role, leading_keys(p)[0].split("#")[0]) for role, _, op, p in prod_calls if op == "UpdateItem"}
    assert updated == {("handlers", "phash"), ("handlers", "form"), ("api", "phash")}
    for role, service, operation, params in prod_calls:
        assert (service, operation) in ACTIONS, f"{service}:{operation} is not mapped to an IAM action: add it here and to the policy"
        action, template = ACTIONS[(service, operation)]
        if not action:
            continue
        if operation in ("Publish", "GetTopicAttributes") and not params["TopicArn"].startswith("arn:"):
            params["TopicArn"] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{params['TopicArn']}"
        if operation == "BatchGetItem":
            (params["TableName"],) = params["RequestItems"]  # one table per batch here
        keys = [o["Key"] for o in params["Delete"]["Objects"]] if operation == "DeleteObjects" else [params.get("Key")]
        for key in keys:
            resource = template.format(**{**params, "Key": key})
            assert allows(POLICIES[role], action, resource, leading_keys(params)), (
                f"{service}:{operation} needs {action} on {resource}, which {POLICY_FILES[role]} does not allow"
            )


def test_update_item_is_granted_only_on_band_and_nonce_keys() -> None:
    """No role may rewrite an image record with UpdateItem: the grant is held to the duplicate
    index's `phash#` band items (and, for the processor, `form#` nonces) by dynamodb:LeadingKeys."""
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PROD['CATALOG_TABLE']}"
    granted = {
        role: [k for k in ("phash#d14.0.1", "form#n", "0123abcd") if allows(p, "dynamodb:UpdateItem", table, [k])]
        for role, p in POLICIES.items()
    }
    assert granted == {"handlers": ["phash#d14.0.1", "form#n"], "api": ["phash#d14.0.1"]}
    assert not allows(POLICIES["handlers"], "dynamodb:UpdateItem", table, ["phash#d14.0.1", "0123abcd"])
