"""Least privilege: every AWS call the code makes under the prod stage's names is allowed
by .chalice/policy-prod.json, and the policy grants nothing broad."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest

from tests.conftest import ROOT, fixture_bytes

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
PROD = CONFIG["stages"]["prod"]["environment_variables"]
REGION, ACCOUNT = "us-east-1", "123456789012"

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
    ("sns", "Publish"): ("sns:Publish", "{TopicArn}"),
    ("sts", "GetCallerIdentity"): ("", ""),  # always allowed, needs no permission
}


def allowed(action: str, resource: str) -> bool:
    for statement in POLICY["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Allow" and action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False


def test_policy_has_no_wildcard_actions_or_resources() -> None:
    for statement in POLICY["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(r not in ("*", "arn:aws:s3:::*") for r in resources), statement


def test_prod_names_fall_under_the_policy() -> None:
    assert allowed("s3:GetObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}x.jpg")
    assert allowed("s3:PutObject", f"arn:aws:s3:::{PROD['PROCESSED_BUCKET']}/{PROD['OUTPUT_PREFIX']}x.jpg/w320.jpg")
    assert not allowed("s3:PutObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/{PROD['UPLOAD_PREFIX']}x.jpg")
    assert not allowed("s3:GetObject", f"arn:aws:s3:::{PROD['UPLOAD_BUCKET']}/private/x.jpg")
    # the reprocess function's event source mapping polls the queue with the function's role
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PROD['REPROCESS_QUEUE']}"
    assert all(allowed(a, queue) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"))
    assert not allowed("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:someone-elses-queue")


@pytest.fixture
def prod_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """Run the real handlers against moto with the prod names, recording every AWS call."""
    import boto3
    from moto import mock_aws

    import app
    from chalicelib import aws as aws_clients
    from chalicelib import service
    from chalicelib.catalog import DynamoCatalog
    from chalicelib.notify import SnsNotifier
    from chalicelib.settings import Settings
    from chalicelib.storage import S3ObjectStore

    calls: list[tuple[str, str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.service_model.endpoint_prefix, model.name, dict(params)))

    env = {**PROD, "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:image-pipeline-prod-alerts", "AWS_REGION": REGION}
    settings = Settings.from_env(env)
    with mock_aws():
        aws_clients.reset()
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (settings.upload_bucket, settings.processed_bucket):
            s3.create_bucket(Bucket=bucket)
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=settings.catalog_table,
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sns = boto3.client("sns", region_name=REGION)
        sns.create_topic(Name=settings.events_topic)
        sns.create_topic(Name="image-pipeline-prod-alerts")
        clients = {name: aws_clients.client(name, REGION) for name in ("s3", "dynamodb", "sns", "sts")}
        for c in clients.values():
            c.meta.events.register("before-parameter-build.*.*", record)
        pipeline = service.Pipeline(
            settings=settings,
            profile=app.profile,
            store=S3ObjectStore(clients["s3"]),
            catalog=DynamoCatalog(clients["dynamodb"], settings.catalog_table),
            notifier=SnsNotifier(clients["sns"], clients["sts"], REGION),
        )
        monkeypatch.setattr(app, "pipeline", lambda: pipeline)
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
        yield calls
        aws_clients.reset()


def test_every_call_the_code_makes_is_allowed(prod_calls: list[tuple[str, str, dict[str, Any]]]) -> None:
    seen = {(service, op) for service, op, _ in prod_calls}
    assert {
        ("s3", "HeadObject"),
        ("s3", "GetObject"),
        ("s3", "PutObject"),
        ("s3", "DeleteObjects"),
        ("sns", "Publish"),
        ("dynamodb", "PutItem"),
    } <= seen
    for service, operation, params in prod_calls:
        assert (service, operation) in ACTIONS, f"{service}:{operation} is not mapped to an IAM action: add it here and to policy-prod.json"
        action, template = ACTIONS[(service, operation)]
        if not action:
            continue
        if operation == "Publish" and not params["TopicArn"].startswith("arn:"):
            params["TopicArn"] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{params['TopicArn']}"
        keys = [o["Key"] for o in params["Delete"]["Objects"]] if operation == "DeleteObjects" else [params.get("Key")]
        for key in keys:
            resource = template.format(**{**params, "Key": key})
            assert allowed(action, resource), f"{service}:{operation} needs {action} on {resource}, which policy-prod.json does not allow"
