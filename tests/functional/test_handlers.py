"""The Chalice handlers end to end under moto: real S3 objects, DynamoDB, SNS -> SQS."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

from tests.conftest import drain, fixture_bytes
from tests.support.handlers import catalog_item, processed_keys, put_and_process
from tests.support.imagetools import metadata_markers, open_bytes, png_header_only


@pytest.fixture
def client(aws: dict[str, Any]) -> Any:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


@pytest.mark.parametrize(
    "key",
    ["uploads/cat.jpg", "uploads/my holiday/beach day.jpg", "uploads/a+b=c%20d.jpg", "uploads/ünïcødé/写真 2.jpg"],
    ids=["plain", "spaces", "plus-percent", "unicode"],
)
def test_upload_is_processed(aws: dict[str, Any], client: Any, key: str) -> None:
    put_and_process(aws, client, key, fixture_bytes("orient_landscape_6.jpg"))
    relative = key.removeprefix("uploads/")
    version = processed_keys(aws)[0].split("/")[-2]  # see test_integrity_lifecycle for what it is made from
    relative = f"{relative}/{version}"
    expected = sorted(f"renditions/{relative}/{name}" for name in ("thumbnail.jpg", "w320.avif", "w320.jpg", "w320.webp"))
    assert processed_keys(aws) == expected

    s3 = aws["s3"]
    head = s3.head_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=f"renditions/{relative}/w320.webp")
    assert head["ContentType"] == "image/webp"
    assert "immutable" in head["CacheControl"]
    assert head["Metadata"]["preset"] == "w320_webp"
    body = s3.get_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=f"renditions/{relative}/w320.jpg")["Body"].read()
    assert open_bytes(body).size == (320, 240)
    assert metadata_markers(body) == []

    record = catalog_item(aws, key)
    assert record is not None
    assert record["status"] == "processed" and record["source_key"] == key
    assert (record["width"], record["height"]) == (600, 450)
    assert sorted(r["key"] for r in record["renditions"]) == expected
    assert "gps" not in json.dumps(record).lower()

    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key)["TagSet"]}
    assert tags["pipeline-status"] == "processed"
    assert tags["processed-at"].endswith("Z")

    [envelope] = drain(aws["sqs"], aws["events_queue"])
    assert envelope["MessageAttributes"]["event_type"]["Value"] == "image.processed"
    event = json.loads(envelope["Message"])
    assert event["type"] == "image.processed" and event["source_key"] == key
    assert len(event["renditions"]) == 4
    assert envelope["Subject"].startswith("Processed ")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.jpg", b"", "empty_file"),
        ("notes.jpg", b"these are my holiday notes, not a picture\n", "not_an_image"),
        ("half.jpg", fixture_bytes("orient_landscape_1.jpg")[:30000], "corrupt_image"),
        ("bomb.png", None, "too_many_pixels"),
    ],
)
def test_bad_input_is_rejected_and_leaves_nothing(aws: dict[str, Any], client: Any, name: str, data: bytes | None, code: str) -> None:
    if data is None:
        data = png_header_only(30000, 30000)
    key = f"uploads/{name}"
    put_and_process(aws, client, key, data)  # returns normally: no Lambda retry storm
    assert processed_keys(aws) == []
    record = catalog_item(aws, key)
    assert record is not None and record["status"] == "rejected" and record["error_code"] == code
    assert record["error"]
    tags = {t["Key"]: t["Value"] for t in aws["s3"].get_object_tagging(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key)["TagSet"]}
    assert tags["pipeline-status"] == "rejected"
    [envelope] = drain(aws["sqs"], aws["events_queue"])
    assert envelope["MessageAttributes"]["event_type"]["Value"] == "image.rejected"
    assert json.loads(envelope["Message"])["error_code"] == code


def test_folder_marker_is_ignored(aws: dict[str, Any], client: Any) -> None:
    put_and_process(aws, client, "uploads/new folder/", b"")
    assert processed_keys(aws) == []
    assert catalog_item(aws, "uploads/new folder/") is None
    assert drain(aws["sqs"], aws["events_queue"]) == []


def test_storage_failure_is_recorded_published_and_raised_for_retry(aws: dict[str, Any], client: Any) -> None:
    key = "uploads/cat.jpg"
    aws["s3"].put_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key, Body=fixture_bytes("orient_landscape_1.jpg"))
    # Remove the processed bucket: every rendition upload fails with NoSuchBucket.
    aws["s3"].delete_bucket(Bucket=aws["env"]["PROCESSED_BUCKET"])
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(key))
    with pytest.raises(Exception, match="NoSuchBucket"):
        client.lambda_.invoke("process_upload", event)
    record = catalog_item(aws, key)
    assert record is not None and record["status"] == "failed"
    [envelope] = drain(aws["sqs"], aws["events_queue"])
    assert envelope["MessageAttributes"]["event_type"]["Value"] == "image.failed"


@pytest.mark.parametrize("event_type", ["image.processed", "image.rejected", "image.failed"])
def test_notify_sends_readable_alerts(aws: dict[str, Any], client: Any, event_type: str) -> None:
    body = {
        "type": event_type,
        "image_id": "abc",
        "source_key": "uploads/cat.jpg",
        "error_code": "not_an_image",
        "error": "the content is not a recognised image",
        "renditions": [{"preset": "thumbnail", "width": 150, "height": 150, "format": "JPEG", "bytes": 5000}],
        "bytes": 1234,
    }
    event = client.events.generate_sns_event(message=json.dumps(body), subject="x")
    client.lambda_.invoke("notify", event)
    alerts = drain(aws["sqs"], aws["alerts_queue"])
    if event_type == "image.processed":
        assert alerts == []  # NOTIFY_ON_SUCCESS is false in dev
        return
    [alert] = alerts
    assert "uploads/cat.jpg" in alert["Message"]
    assert alert["Subject"].startswith("Rejected upload" if event_type == "image.rejected" else "Processing failed")
    if event_type == "image.rejected":
        assert "not a recognised image" in alert["Message"]


def test_notify_forwards_unknown_messages_without_crashing(aws: dict[str, Any], client: Any) -> None:
    alarm = {"AlarmName": "image-pipeline-errors", "NewStateValue": "ALARM", "NewStateReason": "Threshold crossed"}
    client.lambda_.invoke("notify", client.events.generate_sns_event(message=json.dumps(alarm), subject="ALARM"))
    client.lambda_.invoke("notify", client.events.generate_sns_event(message="plain text \u2603", subject=""))
    alerts = drain(aws["sqs"], aws["alerts_queue"])
    assert len(alerts) == 2
    assert "image-pipeline-errors" in alerts[0]["Subject"]
    assert alerts[1]["Message"] == "plain text \u2603"


def _malformed_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("error_code") == "malformed_event"]


def test_malformed_events_are_reported_not_raised(aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Events that are not S3, SNS or SQS records (hand-made, an `s3:TestEvent`, a record without a
    key) used to raise KeyError inside Chalice before any handler code ran: a bare traceback
    and Lambda retrying a hopeless event. Each now returns with one `image.ignored` line
    naming what was wrong, and the good records of a mixed event are still processed."""
    key = "uploads/good.jpg"
    aws["s3"].put_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key, Body=fixture_bytes("orient_landscape_1.jpg"))
    good = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(key))
    keyless = json.loads(json.dumps(good))
    del keyless["Records"][0]["s3"]["object"]["key"]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": aws["env"]["UPLOAD_BUCKET"]}
    capsys.readouterr()
    for handler in ("process_upload", "remove_renditions"):
        for event in ({}, {"Records": []}, test_event, keyless, {"Records": ["garbage", {"s3": {"object": {"key": 5}}}]}):
            client.lambda_.invoke(handler, event)
    lines = _malformed_lines(capsys.readouterr().out)
    assert len(lines) == 2 * 6 and all(line["event"] == "image.ignored" and line["reason"] for line in lines)
    assert any("s3:TestEvent" in line["reason"] for line in lines)
    assert processed_keys(aws) == [] and drain(aws["sqs"], aws["events_queue"]) == []

    mixed = {"Records": [{"eventName": "ObjectCreated:Put"}, *good["Records"]]}
    client.lambda_.invoke("process_upload", mixed)
    assert len(_malformed_lines(capsys.readouterr().out)) == 1
    assert (catalog_item(aws, key) or {}).get("status") == "processed"

    no_subject = client.events.generate_sns_event(message="a message without a subject")
    del no_subject["Records"][0]["Sns"]["Subject"]
    client.lambda_.invoke("notify", no_subject)
    client.lambda_.invoke("notify", {"Records": [{"Sns": {}}]})
    assert len(_malformed_lines(capsys.readouterr().out)) == 1
    [alert] = drain(aws["sqs"], aws["alerts_queue"])
    assert alert["Message"] == "a message without a subject"

    client.lambda_.invoke("reprocess", {})
    client.lambda_.invoke("reprocess", {"Records": [{"messageId": "1"}]})
    assert len(_malformed_lines(capsys.readouterr().out)) == 2


def test_lambda_and_chalices_invokers_run_the_same_raw_event_entry(
    aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lambda calls the module attribute its handler string names (`app.process_upload`);
    chalice.test and the local stack call `app.handler_map[name]`. Both are the entry that
    hands our parser the raw event, so a malformed event is reported the same either way."""
    import app

    for name in ("process_upload", "remove_renditions", "notify"):
        assert app.app.handler_map[name] is getattr(app, name)
    capsys.readouterr()
    app.process_upload({"Records": []}, None)
    app.notify({"Records": [{"Sns": {}}]}, None)
    assert len(_malformed_lines(capsys.readouterr().out)) == 2
