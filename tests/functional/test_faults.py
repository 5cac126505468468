"""Faults injected into real AWS calls (moto, with botocore's event hooks making chosen
calls fail as AWS would): no half-written state is visible, retries are safe, and a failed
SNS publish never loses a processed image. Also: awkward keys through the real handler."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import aws as aws_clients
from chalicelib.keys import image_id_for
from tests.conftest import drain, fixture_bytes
from tests.support.handlers import catalog_item, processed_keys

KEY = "uploads/faults/cat.jpg"


@pytest.fixture
def client(aws: dict[str, Any]) -> Any:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


@contextmanager
def failing(
    service: str, operation: str, code: str = "InternalError", when: Callable[[dict[str, Any]], bool] = lambda _: True
) -> Iterator[list[str]]:
    """Make `operation` on the app's `service` client fail with `code` (as it would once
    botocore's retries gave up), for the calls whose parameters satisfy `when`."""
    client = aws_clients.client(service, "us-east-1")
    seen: list[str] = []
    event = f"before-parameter-build.{service}.{operation}"

    def inject(params: dict[str, Any], **_: Any) -> None:
        if when(params):
            seen.append(str(params.get("Key", operation)))
            raise ClientError(
                {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, operation
            )

    client.meta.events.register(event, inject)
    try:
        yield seen
    finally:
        client.meta.events.unregister(event, inject)


def invoke(aws: dict[str, Any], client: Any, key: str, data: bytes | None = None) -> Any:
    if data is not None:
        aws["s3"].put_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key, Body=data)
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(key))
    return client.lambda_.invoke("process_upload", event)


def outcome_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def listed_exist(aws: dict[str, Any], key: str) -> None:
    """The invariant: every rendition the catalog lists exists in the bucket."""
    record = catalog_item(aws, key) or {}
    assert {r["key"] for r in record.get("renditions", [])} <= set(processed_keys(aws))


def test_s3_read_failure_is_recorded_and_the_retry_succeeds(aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with failing("s3", "GetObject", "SlowDown") as seen, pytest.raises(ClientError):
        invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    assert seen
    record = catalog_item(aws, KEY)
    assert record is not None and record["status"] == "failed" and record["error_code"] == "internal_error"
    assert processed_keys(aws) == []
    [line] = [x for x in outcome_lines(capsys) if x["event"] == "image.failed"]
    assert line["ImagesFailed"] == 1 and "SlowDown" in line["error"]
    assert [json.loads(m["Message"])["type"] for m in drain(aws["sqs"], aws["events_queue"])] == ["image.failed"]
    invoke(aws, client, KEY)  # Lambda's retry of the same event
    assert catalog_item(aws, KEY)["status"] == "processed"  # type: ignore[index]
    listed_exist(aws, KEY)


def test_one_rendition_upload_failing_leaves_no_partial_outputs(aws: dict[str, Any], client: Any) -> None:
    with failing("s3", "PutObject", when=lambda p: str(p.get("Key", "")).endswith("w320.webp")) as seen, pytest.raises(ClientError):
        invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    assert seen
    assert processed_keys(aws) == []  # the thumbnail and w320.jpg that did upload were removed
    assert catalog_item(aws, KEY)["renditions"] == []  # type: ignore[index]
    invoke(aws, client, KEY)
    assert len(processed_keys(aws)) == 4  # thumbnail, w320 JPEG, WebP and AVIF
    listed_exist(aws, KEY)


def test_failure_while_overwriting_keeps_serving_the_previous_version(aws: dict[str, Any], client: Any) -> None:
    invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    before = catalog_item(aws, KEY)
    assert before is not None and before["status"] == "processed"
    with failing("s3", "PutObject", when=lambda p: str(p.get("Key", "")).endswith("thumbnail.jpg")), pytest.raises(ClientError):
        invoke(aws, client, KEY, fixture_bytes("orient_portrait_1.jpg"))
    after = catalog_item(aws, KEY)
    assert after is not None and after["status"] == "processed" and after["source_etag"] == before["source_etag"]
    listed_exist(aws, KEY)


def test_dynamodb_write_failure_removes_unrecorded_renditions(aws: dict[str, Any], client: Any) -> None:
    with failing("dynamodb", "PutItem", "ProvisionedThroughputExceededException") as seen, pytest.raises(ClientError):
        invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    assert seen
    assert catalog_item(aws, KEY) is None  # even the failure could not be recorded
    assert processed_keys(aws) == []  # so nothing unrecorded is left behind
    invoke(aws, client, KEY)
    assert catalog_item(aws, KEY)["status"] == "processed"  # type: ignore[index]
    listed_exist(aws, KEY)


def test_sns_failure_never_loses_a_processed_image(aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with failing("sns", "Publish", "AuthorizationError") as seen:
        invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))  # does not raise: no retry needed
    assert seen
    record = catalog_item(aws, KEY)
    assert record is not None and record["status"] == "processed"
    listed_exist(aws, KEY)
    lines = outcome_lines(capsys)
    failed = [x for x in lines if x["event"] == "publish.failed"]
    assert len(failed) == 1 and failed[0]["PublishFailures"] == 1 and failed[0]["image_id"] == image_id_for(KEY)
    assert failed[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "PublishFailures", "Unit": "Count"}]
    assert [x["event"] for x in lines if x["event"].startswith("image.")] == ["image.processed"]


def test_delete_failure_is_retried_without_listing_missing_files(aws: dict[str, Any], client: Any) -> None:
    invoke(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    aws["s3"].delete_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=KEY)
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(KEY), event_name="ObjectRemoved:Delete")
    with failing("s3", "DeleteObjects"), pytest.raises(ClientError):
        client.lambda_.invoke("remove_renditions", event)
    record = catalog_item(aws, KEY)
    assert record is not None and record["status"] == "deleted" and record["renditions"] == []
    client.lambda_.invoke("remove_renditions", event)
    assert processed_keys(aws) == []


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "outcome"),
    [
        ("uploads/a b+c%d.jpg", "processed"),
        ("uploads/ünï/写真 🙂.jpg", "processed"),
        ("uploads/../../etc/passwd.jpg", "processed"),
        ("uploads/x/./../y.jpg", "processed"),
        ("uploads/" + "k" * (1024 - len("uploads/") - 4) + ".jpg", "processed"),  # exactly 1,024 bytes
        ("uploads/folder/", "ignored"),  # a zero-byte "folder" marker
        ("uploads/not-a-folder/", "processed"),  # a real image whose key ends in /
        ("outside/cat.jpg", "ignored"),
    ],
    ids=["space-plus-percent", "unicode", "dotdot", "dot-segments", "1024-bytes", "folder-marker", "slash-with-data", "outside"],
)
def test_awkward_keys_through_the_handler(aws: dict[str, Any], client: Any, key: str, outcome: str) -> None:
    assert len(key.encode()) <= 1024
    data = b"" if key == "uploads/folder/" else fixture_bytes("orient_landscape_1.jpg")
    invoke(aws, client, key, data)
    record = catalog_item(aws, key)
    keys = processed_keys(aws)
    if outcome == "ignored":
        assert record is None and keys == []
        return
    assert record is not None and record["status"] == "processed" and record["source_key"] == key
    assert sorted(r["key"] for r in record["renditions"]) == keys and len(keys) == 4
    for out in keys:
        assert out.startswith("renditions/") and len(out.encode()) <= 1024
        assert "/../" not in out and "/./" not in out and "//" not in out
    head = aws["s3"].head_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=keys[0])
    assert head["Metadata"]["source-key"].isascii()


# --- races against real S3 and DynamoDB semantics ---------------------------------------------


def s3_event(client: Any, bucket: str, key: str, sequencer: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    body: dict[str, Any] = client.events.generate_s3_event(bucket=bucket, key=quote_plus(key), event_name=name)
    body["Records"][0]["s3"]["object"]["sequencer"] = sequencer
    return body


@pytest.mark.parametrize("change", ["overwritten", "deleted"])
def test_source_changing_between_head_and_get_is_left_to_its_own_event(
    aws: dict[str, Any], client: Any, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The read is pinned to the ETag HEAD saw. When the object is overwritten or deleted in
    between, that change has its own S3 event: this one steps aside (no failure, no alert, no
    retry, nothing written), and the newer event then renders what is really there."""
    bucket = aws["env"]["UPLOAD_BUCKET"]
    aws["s3"].put_object(Bucket=bucket, Key=KEY, Body=fixture_bytes("orient_landscape_1.jpg"))
    app_s3 = aws_clients.client("s3", "us-east-1")
    changed: list[str] = []

    def change_first(**_: Any) -> None:
        if not changed:  # S3 applies the change while our GET is on its way
            changed.append(change)
            if change == "overwritten":
                aws["s3"].put_object(Bucket=bucket, Key=KEY, Body=fixture_bytes("orient_portrait_1.jpg"))
            else:
                aws["s3"].delete_object(Bucket=bucket, Key=KEY)

    app_s3.meta.events.register("before-call.s3.GetObject", change_first)
    try:
        client.lambda_.invoke("process_upload", s3_event(client, bucket, KEY, "0062E99A88DC407450"))  # does not raise
    finally:
        app_s3.meta.events.unregister("before-call.s3.GetObject", change_first)
    assert changed == [change]
    lines = outcome_lines(capsys)
    assert [x["event"] for x in lines] == ["image.ignored"] and "changed" in lines[0]["reason"]
    assert drain(aws["sqs"], aws["events_queue"]) == []  # no "failed" alert for a normal race
    assert catalog_item(aws, KEY) is None and processed_keys(aws) == []
    if change == "overwritten":
        client.lambda_.invoke("process_upload", s3_event(client, bucket, KEY, "0062E99A88DC407460"))
        record = catalog_item(aws, KEY)
        assert record is not None and record["status"] == "processed" and (record["width"], record["height"]) == (450, 600)
        listed_exist(aws, KEY)


def test_dynamodb_conditional_write_orders_by_sequencer_not_by_arrival(aws: dict[str, Any]) -> None:
    """The real table's condition, not the in-memory one: an older S3 sequencer never
    replaces a newer one (compared as hex numbers, whatever their length), a duplicate of the
    same event may write again, and a refused write changes nothing."""
    from chalicelib.catalog import DynamoCatalog, sequencer_order
    from chalicelib.records import ImageRecord

    catalog = DynamoCatalog(aws["ddb"], aws["env"]["CATALOG_TABLE"])

    def put(sequencer: str, label: str) -> bool:
        return catalog.put(
            ImageRecord.from_dict({"image_id": "i1", "sequencer": sequencer_order(sequencer), "label": label, "listing": "images"})
        )

    assert put("0062E99A88DC407460", "newer")
    assert not put("0062E99A88DC407450", "older")
    assert not put("62E99A88DC4074", "shorter, so smaller")  # 16 hex digits < 18
    assert (catalog.get("i1") or ImageRecord("")).to_dict()["label"] == "newer"
    assert put("0062E99A88DC407460", "duplicate")  # the same event delivered again: idempotent
    assert put("0062E99A88DC4074600", "longer, so newer")
    assert (catalog.get("i1") or ImageRecord("")).to_dict()["label"] == "longer, so newer"


def test_metrics_come_from_the_log_line_not_from_api_calls(aws: dict[str, Any], client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded Metric Format: a processed and a rejected upload make only the S3, DynamoDB
    and SNS calls of the pipeline itself, never CloudWatch's PutMetricData (which would add
    latency and a failure mode to every image)."""
    from botocore.client import BaseClient

    calls: list[str] = []
    original = BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        calls.append(f"{self.meta.service_model.service_name}:{operation}")
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    invoke(aws, client, "uploads/metrics/good.jpg", fixture_bytes("orient_landscape_1.jpg"))
    invoke(aws, client, "uploads/metrics/bad.jpg", b"not an image")
    made = set(calls)
    pipeline = {"s3:HeadObject", "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "dynamodb:GetItem", "dynamodb:PutItem"}
    pipeline |= {"s3:DeleteObjects", "sns:Publish", "sts:GetCallerIdentity"}  # the topic ARN's account, once per container
    pipeline |= {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}  # the near-duplicate index (chalicelib/duplicates.py)
    assert {"s3:GetObject", "dynamodb:PutItem", "sns:Publish"} <= made
    assert made - pipeline == set(), "calls outside the pipeline's own"
    assert not any(c.startswith(("cloudwatch:", "monitoring:")) for c in calls)
