"""Integrity under moto: a re-upload is never stale (versioned rendition keys, no orphans), a
delete really deletes (source, tombstone, CDN invalidation)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from chalice.test import Client

from chalicelib import api, deletion, processing, reprocess, wiring
from chalicelib.cdn import MemoryCdn
from chalicelib.keys import image_id_for, rendition_version
from chalicelib.models import Upload
from chalicelib.presets import WEB
from tests.conftest import fixture_bytes
from tests.support.handlers import catalog_item, processed_keys, put_and_process

KEY = "uploads/avatar.jpg"


@pytest.fixture
def client(aws: dict[str, Any]) -> Any:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


def test_reupload_gets_new_rendition_urls_and_the_old_ones_are_removed(aws: dict[str, Any], client: Any) -> None:
    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    first = processed_keys(aws)
    head = aws["s3"].head_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=KEY)
    version = rendition_version(head.get("VersionId"), head["ETag"].strip('"'), WEB.version)
    assert first and all(k.startswith(f"renditions/avatar.jpg/{version}/") for k in first)

    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_6.jpg"))  # the same name, a new picture
    second = processed_keys(aws)
    record = catalog_item(aws, KEY)
    assert record is not None and record["status"] == "processed"
    assert sorted(r["key"] for r in record["renditions"]) == second  # the record points at the current set
    assert not set(first) & set(second)  # new URLs: what a CDN cached for a year is never served for the new picture
    head = aws["s3"].head_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=second[0])
    assert "immutable" in head["CacheControl"]


# --- DELETE really deletes --------------------------------------------------------------------


def _delete(client: Any, image_id: str, query: str = "") -> dict[str, Any]:
    response = client.http.request("DELETE", f"/images/{image_id}{query}", headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    body: dict[str, Any] = json.loads(response.body)
    return body


def _reprocess(aws: dict[str, Any], client: Any, key: str) -> None:
    job = reprocess.Job(aws["env"]["UPLOAD_BUCKET"], key, "an older profile").body()
    client.lambda_.invoke("reprocess", client.events.generate_sqs_event([job], queue_name=aws["env"]["REPROCESS_QUEUE"]))


def _status(client: Any, image_id: str) -> str | None:
    """The record's status as the API lists it (GET /images/{id} of a deleted image is a 404)."""
    for status in ("processed", "deleted"):
        listing = json.loads(client.http.get(f"/images?status={status}").body)
        if any(item["image_id"] == image_id for item in listing["items"]):
            return status
    return None


@pytest.mark.parametrize("query", ["", "?keep_source=true"], ids=["default", "keep-source"])
def test_a_deleted_image_never_comes_back(aws: dict[str, Any], client: Any, query: str) -> None:
    """Before: DELETE 200, GET 404, reprocess, GET 200 processed (the source stayed and the
    record was gone, so a reprocess run rendered it again)."""
    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    image_id = image_id_for(KEY)
    body = _delete(client, image_id, query)
    assert body["deleted"]["source"] is (query == "")
    uploads = aws["s3"].list_objects_v2(Bucket=aws["env"]["UPLOAD_BUCKET"]).get("Contents", [])
    assert [o["Key"] for o in uploads] == ([KEY] if query else [])
    if not query:  # S3 tells the remover the source is gone: nothing left to do
        event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=KEY, event_name="ObjectRemoved:Delete")
        client.lambda_.invoke("remove_renditions", event)
    _reprocess(aws, client, KEY)
    # A late redelivery of the original upload event loses to the tombstone too.
    client.lambda_.invoke("process_upload", client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=KEY))
    assert client.http.get(f"/images/{image_id}").status_code == 404
    assert _status(client, image_id) == "deleted"
    assert processed_keys(aws) == []


def test_a_new_upload_after_a_delete_is_a_new_image(aws: dict[str, Any], client: Any) -> None:
    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    _delete(client, image_id_for(KEY))
    aws["s3"].put_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=KEY, Body=fixture_bytes("orient_landscape_6.jpg"))
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=KEY)
    sequencer = event["Records"][0]["s3"]["object"]["sequencer"]
    event["Records"][0]["s3"]["object"]["sequencer"] = format(int(sequencer, 16) + 1, "X")  # S3's for a later write: larger
    client.lambda_.invoke("process_upload", event)
    assert _status(client, image_id_for(KEY)) == "processed"
    assert client.http.get(f"/images/{image_id_for(KEY)}").status_code == 200


def test_delete_invalidates_the_renditions_in_cloudfront(aws: dict[str, Any]) -> None:
    import app

    cloudfront = boto3.client("cloudfront", region_name="us-east-1")
    distribution = cloudfront.create_distribution(DistributionConfig=_distribution_config())["Distribution"]["Id"]
    settings = replace(app.settings, cdn_distribution_id=distribution)
    pipeline = wiring.aws_pipeline(settings, app.profile)
    aws["s3"].put_object(Bucket=settings.upload_bucket, Key="uploads/a b+c.jpg", Body=fixture_bytes("orient_landscape_1.jpg"))
    outcome = processing.handle_upload(pipeline, Upload(settings.upload_bucket, "uploads/a b+c.jpg", sequencer="0A"))
    context = wiring.aws_api(settings, app.profile)
    assert context.cdn is not None
    reply = api.delete_image(context, image_id_for("uploads/a b+c.jpg"), {})
    assert reply.body["deleted"]["cdn_invalidated"] is True
    [summary] = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]["Items"]
    batch = cloudfront.get_invalidation(DistributionId=distribution, Id=summary["Id"])["Invalidation"]["InvalidationBatch"]
    expected = sorted("/" + quote(r.key, safe="/") for r in outcome.renditions)
    assert sorted(batch["Paths"]["Items"]) == expected and all("%20" in p and "%2B" in p for p in expected)


def test_no_distribution_configured_means_no_invalidation() -> None:
    cdn = MemoryCdn()
    assert deletion._invalidate(None, ["renditions/a.jpg/v/w320.jpg"]) is None
    assert deletion._invalidate(cdn, []) is None and cdn.invalidations == []


def _distribution_config() -> dict[str, Any]:
    origin = {"Id": "processed", "DomainName": "processed.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    return {
        "CallerReference": "integrity-test",
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "processed", "ViewerProtocolPolicy": "https-only", "MinTTL": 0},
        "Comment": "",
        "Enabled": True,
    }


# --- the deadline reaches the use case ----------------------------------------------------------


class _LittleTime:
    def get_remaining_time_in_millis(self) -> int:
        return 2_000


def test_the_upload_handler_gives_the_use_case_the_lambda_deadline(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    seen: list[Any] = []
    monkeypatch.setattr(app, "settings", replace(app.settings, deadline_margin_ms=100))
    monkeypatch.setattr(processing, "handle_upload", lambda pipeline, upload, deadline=None: seen.append(deadline))
    event = {"Records": [{"s3": {"bucket": {"name": aws["env"]["UPLOAD_BUCKET"]}, "object": {"key": "uploads/a.jpg"}}}]}
    app.app.handler_map["process_upload"](event, _LittleTime())
    [deadline] = seen
    assert deadline is not None and deadline.remaining() <= 1.8 and (deadline.limit, deadline.grace) == (2, 0.1)  # 10% kept back
