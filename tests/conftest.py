"""Test configuration. The dev stage's environment is loaded into the process before `app`
is imported, because Chalice reads decorator arguments (bucket, topic) at import time."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))

DEV_ENV: dict[str, str] = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
os.environ.update(DEV_ENV)
# The tests run the dev stage without the local stack's endpoint (moto in-process): open
# writes there are meant (Settings.refuse_anonymous_writes).
os.environ["ALLOW_ANONYMOUS_WRITES"] = "true"
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the photo corpus is not at {CORPUS} (set IMAGE_PIPELINE_CORPUS)")
    return CORPUS


def corpus_photos() -> list[Any]:
    """`parametrize` values: each corpus photo, or one skipped case that says why (an empty
    list would skip with pytest's "got empty parameter set")."""
    photos = sorted(CORPUS.glob("photo_*.jpg")) if CORPUS.is_dir() else []
    if not photos:
        reason = f"no photo_*.jpg in {CORPUS} (the photo corpus; set IMAGE_PIPELINE_CORPUS)"
        return [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(photo, id=photo.name) for photo in photos]


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    """moto-backed AWS with the dev stage's buckets, table and topics, plus an SQS queue
    subscribed to each topic so tests can read what was published."""
    with moto_stack() as stack:
        yield stack


@contextmanager
def moto_stack() -> Iterator[dict[str, Any]]:
    """What the `aws` fixture yields, for fixtures of a wider scope."""
    import boto3
    from moto import mock_aws

    from chalicelib import aws as aws_clients

    with mock_aws():
        aws_clients.reset()
        import app as app_module

        app_module.pipeline.cache_clear()
        app_module.api_context.cache_clear()
        env = DEV_ENV
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=env["UPLOAD_BUCKET"])
        s3.create_bucket(Bucket=env["PROCESSED_BUCKET"])
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_catalog_table(ddb, env["CATALOG_TABLE"])
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queues = {}
        for name in (env["EVENTS_TOPIC"], env["ALERTS_TOPIC_ARN"].rsplit(":", 1)[-1]):
            topic_arn = sns.create_topic(Name=name)["TopicArn"]
            queue_url = sqs.create_queue(QueueName=f"{name}-tap")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
            queues[name] = queue_url
        yield {
            "s3": s3,
            "ddb": ddb,
            "sns": sns,
            "sqs": sqs,
            "env": env,
            "events_queue": queues[env["EVENTS_TOPIC"]],
            "alerts_queue": queues[env["ALERTS_TOPIC_ARN"].rsplit(":", 1)[-1]],
        }
        app_module.pipeline.cache_clear()
        app_module.api_context.cache_clear()
        aws_clients.reset()


def create_catalog_table(ddb: Any, name: str) -> None:
    """The catalog table as docs/catalog-and-events.md describes it, with both listing indexes."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("image_id", "listing", "status", "updated_at")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": "updated_at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, hash_key in (("by_updated", "listing"), ("by_status", "status"))
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every SNS envelope waiting in `queue_url` (body parsed)."""
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
