"""remove_renditions and reprocess through chalice's test client under moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

from chalicelib.keys import image_id_for
from tests.conftest import drain, fixture_bytes
from tests.support.handlers import catalog_item, processed_keys, put_and_process
from tools import reprocess


@pytest.fixture
def client(aws: dict[str, Any]) -> Any:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


def removed(aws: dict[str, Any], client: Any, key: str) -> None:
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(key), event_name="ObjectRemoved:Delete")
    client.lambda_.invoke("remove_renditions", event)


def test_handlers_are_registered_the_chalice_way() -> None:
    import app

    sources = {type(s).__name__: s for s in app.app.event_sources if s.name in ("remove_renditions", "reprocess")}
    assert sources["S3EventConfig"].events == ["s3:ObjectRemoved:*"]
    assert sources["S3EventConfig"].prefix == "uploads/"
    assert sources["SQSEventConfig"].queue == "image-pipeline-dev-reprocess"


def test_deleting_a_source_removes_its_renditions(aws: dict[str, Any], client: Any) -> None:
    key = "uploads/holiday/beach day.jpg"
    put_and_process(aws, client, key, fixture_bytes("orient_landscape_6.jpg"))
    assert len(processed_keys(aws)) == 3
    drain(aws["sqs"], aws["events_queue"])
    aws["s3"].delete_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key)
    removed(aws, client, key)
    assert processed_keys(aws) == []
    record = catalog_item(aws, key)
    assert record is not None and record["status"] == "deleted" and record["renditions"] == []
    [envelope] = drain(aws["sqs"], aws["events_queue"])
    assert json.loads(envelope["Message"])["type"] == "image.deleted"


def test_versioned_bucket_delete_marker_and_version_delete(aws: dict[str, Any], client: Any) -> None:
    s3, bucket, key = aws["s3"], aws["env"]["UPLOAD_BUCKET"], "uploads/v.jpg"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put_and_process(aws, client, key, fixture_bytes("orient_landscape_1.jpg"))
    first = catalog_item(aws, key)
    put_and_process(aws, client, key, fixture_bytes("orient_portrait_1.jpg"))
    second = catalog_item(aws, key)
    assert first and second and first["source_version"] != second["source_version"]
    # Permanently deleting the OLD version leaves the current one and its renditions alone.
    s3.delete_object(Bucket=bucket, Key=key, VersionId=first["source_version"])
    removed(aws, client, key)
    assert catalog_item(aws, key)["status"] == "processed"  # type: ignore[index]
    assert len(processed_keys(aws)) == 3
    # A plain delete creates a delete marker: the object is gone for readers.
    s3.delete_object(Bucket=bucket, Key=key)
    event = client.events.generate_s3_event(bucket=bucket, key=key, event_name="ObjectRemoved:DeleteMarkerCreated")
    client.lambda_.invoke("remove_renditions", event)
    assert processed_keys(aws) == []
    assert catalog_item(aws, key)["status"] == "deleted"  # type: ignore[index]


def test_permanently_deleting_the_current_version_renders_the_one_now_current(aws: dict[str, Any], client: Any) -> None:
    s3, bucket, key = aws["s3"], aws["env"]["UPLOAD_BUCKET"], "uploads/rollback.jpg"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put_and_process(aws, client, key, fixture_bytes("orient_landscape_1.jpg"))  # 600x450
    put_and_process(aws, client, key, fixture_bytes("orient_portrait_1.jpg"))  # 450x600
    current = catalog_item(aws, key)
    assert current is not None and current["height"] == 600
    s3.delete_object(Bucket=bucket, Key=key, VersionId=current["source_version"])
    removed(aws, client, key)
    record = catalog_item(aws, key)
    assert record is not None and record["status"] == "processed" and (record["width"], record["height"]) == (600, 450)
    assert sorted(r["key"] for r in record["renditions"]) == processed_keys(aws)


def test_reprocess_handler_consumes_sqs_jobs(aws: dict[str, Any], client: Any, tmp_path: Path) -> None:
    import app

    key = "uploads/old.jpg"
    put_and_process(aws, client, key, fixture_bytes("orient_landscape_1.jpg"))
    # Pretend the record was made with an older profile version.
    aws["ddb"].update_item(
        TableName=aws["env"]["CATALOG_TABLE"],
        Key={"image_id": {"S": image_id_for(key)}},
        UpdateExpression="SET profile_version = :v",
        ExpressionAttributeValues={":v": {"S": "older"}},
    )
    queue = reprocess.MemoryWorkQueue()
    progress = reprocess.run(app.pipeline(), app.pipeline().store, reprocess.enqueue(queue), cursor_file=tmp_path / "c.json")  # type: ignore[arg-type]
    assert progress.submitted == 1
    client.lambda_.invoke("reprocess", client.events.generate_sqs_event(queue.bodies, queue_name=aws["env"]["REPROCESS_QUEUE"]))
    record = catalog_item(aws, key)
    assert record is not None and record["profile_version"] == app.profile.version
    assert sorted(r["key"] for r in record["renditions"]) == processed_keys(aws)


def test_cli_enqueues_on_the_stage_queue(aws: dict[str, Any], client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_and_process(aws, client, "uploads/a.jpg", fixture_bytes("orient_landscape_1.jpg"))
    aws["s3"].put_object(
        Bucket=aws["env"]["UPLOAD_BUCKET"], Key="uploads/never-processed.jpg", Body=fixture_bytes("orient_landscape_2.jpg")
    )
    url = aws["sqs"].create_queue(QueueName=aws["env"]["REPROCESS_QUEUE"])["QueueUrl"]
    code = reprocess.main(["--stage", "dev", "--cursor-file", str(tmp_path / "c.json"), "--batch-size", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "batch 2" in err and "1 queued on image-pipeline-dev-reprocess" in err and "complete" in err
    messages = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["key"] for m in messages] == ["uploads/never-processed.jpg"]
    # The same command again does nothing, and says so instead of repeating the saved
    # totals as if it had just queued them ("1 queued on ... listed in 0.0 s").
    assert reprocess.main(["--stage", "dev", "--cursor-file", str(tmp_path / "c.json"), "--direct"]) == 0
    err = capsys.readouterr().err
    assert "already complete" in err and "--restart" in err
    assert "queued on" not in err and "rendered here" not in err


def test_older_event_delivered_after_an_overwrite_is_ignored(aws: dict[str, Any], client: Any) -> None:
    """Versioned bucket, two uploads; S3 delivers the newer event first, then the older one."""
    s3, bucket, key = aws["s3"], aws["env"]["UPLOAD_BUCKET"], "uploads/late.jpg"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key=key, Body=fixture_bytes("orient_landscape_1.jpg"))
    s3.put_object(Bucket=bucket, Key=key, Body=fixture_bytes("orient_portrait_1.jpg"))

    def event(sequencer: str) -> dict[str, Any]:
        body = client.events.generate_s3_event(bucket=bucket, key=key)
        body["Records"][0]["s3"]["object"]["sequencer"] = sequencer
        return body

    client.lambda_.invoke("process_upload", event("0062E99A88DC407460"))  # the overwrite
    client.lambda_.invoke("process_upload", event("0062E99A88DC407450"))  # the first upload, late
    record = catalog_item(aws, key)
    assert record is not None and (record["width"], record["height"]) == (450, 600)
    assert record["sequencer"].endswith("62E99A88DC407460")
    assert sorted(r["key"] for r in record["renditions"]) == processed_keys(aws)
    head = aws["s3"].head_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=processed_keys(aws)[0])
    assert head["Metadata"]["source-etag"] == record["source_etag"]
