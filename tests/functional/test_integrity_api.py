"""Strangers learn nothing: the API and the events show the public view of a record (an
allow-list), never the stored item. Through chalice.test.Client under moto."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.catalog import DynamoCatalog
from chalicelib.records import FAILED_MESSAGE, ImageRecord
from tests.conftest import drain, fixture_bytes
from tests.functional import test_api as shared
from tests.functional.test_api import call, upload_and_process

# test_api's fixtures: one moto stack and test client for the module, emptied per test
stack, aws, shared_client, client = shared.stack, shared.aws, shared.shared_client, shared.client

INTERNAL = {"source_bucket", "source_etag", "source_version", "sequencer", "listing", "removing", "uploaded_by"}
LEAK = "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/image-pipeline-prod-api/x is not authorized on a bucket"


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _seed_failed(aws: dict[str, Any]) -> str:
    catalog = DynamoCatalog(aws["ddb"], aws["env"]["CATALOG_TABLE"])
    image_id = "f" * 32
    record = {
        "image_id": image_id,
        "source_bucket": aws["env"]["UPLOAD_BUCKET"],
        "source_key": "uploads/x/broken.jpg",
        "source_etag": "etag",
        "sequencer": "0" * 30 + "0A",
        "listing": "images",
        "status": "failed",
        "error_code": "internal_error",
        "error": LEAK,
        "updated_at": "2026-01-01T00:00:00.000+00:00",
        "removing": ["renditions/x/old.jpg"],
        "uploaded_by": "someone",
    }
    assert catalog.put(ImageRecord.from_dict(record))
    return image_id


def test_api_answers_show_no_internal_field(aws: dict[str, Any], client: Any) -> None:
    ticket = upload_and_process(aws, client, "cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    failed = _seed_failed(aws)
    answers = [
        call(client, "GET", "/images"),
        call(client, "GET", "/images?status=failed"),
        call(client, "GET", f"/images/{ticket['image_id']}"),
        call(client, "GET", f"/images/{failed}"),
    ]
    for status, body in answers:
        assert status == 200, body
        assert not INTERNAL & _keys(body), body
        text = json.dumps(body)
        for bucket in (aws["env"]["UPLOAD_BUCKET"], aws["env"]["PROCESSED_BUCKET"]):
            # bucket names only ever inside a presigned URL's host/path, never as a field value
            assert f'"{bucket}"' not in text
        assert "123456789012" not in text and "AccessDenied" not in text
    _, failed_view = answers[3]
    assert failed_view["error_code"] == "internal_error" and failed_view["error"] == FAILED_MESSAGE


def test_the_processed_event_carries_what_consumers_need_and_nothing_internal(aws: dict[str, Any], client: Any) -> None:
    """Other teams consume `image.processed`: image_id, source_key, renditions and sizes stay;
    write ordering, ETags, index keys and timings never leave the pipeline."""
    drain(aws["sqs"], aws["events_queue"])  # the module shares one queue: start empty
    ticket = upload_and_process(aws, client, "cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    [envelope] = drain(aws["sqs"], aws["events_queue"])
    event = json.loads(envelope["Message"])
    assert event["type"] == "image.processed"
    assert event["image_id"] == ticket["image_id"] and event["source_key"] == ticket["key"]
    assert event["renditions"] and all({"key", "width", "height", "bytes"} <= set(r) for r in event["renditions"])
    assert event["bytes"] > 0 and event["renditions_bytes"] > 0
    assert not (INTERNAL - {"source_bucket"}) & _keys(event)
    assert not [k for k in _keys(event) if k.endswith("_ms")]
