"""Strangers learn nothing: the API and the events show the public view of a record (an
allow-list), never the stored item. Through chalice.test.Client under moto."""

from __future__ import annotations

import json
from base64 import b64decode, urlsafe_b64encode
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from chalice.test import Client

from chalicelib.catalog import DynamoCatalog
from chalicelib.keys import image_id_for
from chalicelib.records import FAILED_MESSAGE, ImageRecord
from tests.conftest import drain, fixture_bytes
from tests.functional import test_api as shared
from tests.functional.test_api import call, upload_and_process
from tools import openapi

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


# --- WRITE_AUTH=cognito ------------------------------------------------------------------

POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbC123"


def token(sub: str, *groups: str) -> dict[str, str]:
    """An ID token as API Gateway's Cognito authorizer passes its claims on (chalice local
    decodes the payload without verifying it, as API Gateway would after verifying)."""
    claims: dict[str, Any] = {"sub": sub, "cognito:username": f"user-{sub}", "token_use": "id"}
    if groups:
        claims["cognito:groups"] = list(groups)

    def part(value: dict[str, Any]) -> str:
        return urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return {"Authorization": f"{part({'alg': 'none'})}.{part(claims)}.sig"}


def upload_as(aws: dict[str, Any], client: Any, who: dict[str, str], name: str) -> dict[str, Any]:
    data = fixture_bytes("orient_landscape_1.jpg")
    status, ticket = call(client, "POST", "/uploads", {"filename": name, "content_type": "image/jpeg", "size": len(data)}, who)
    assert status == 201, ticket
    form = ticket["upload"]
    response = requests.post(form["url"], data=form["fields"], files={"file": (name, data, "image/jpeg")}, timeout=10)
    assert response.status_code == 204, response.text
    client.lambda_.invoke(
        "process_upload", client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(ticket["key"]))
    )
    return dict(ticket)


def test_cognito_records_the_uploader_and_only_they_or_an_admin_delete(aws: dict[str, Any]) -> None:
    module = openapi.load_app("dev", WRITE_AUTH="cognito", COGNITO_USER_POOL_ARN=POOL)
    alice, bob, admin = token("alice-sub"), token("bob-sub", "editors"), token("root-sub", "admins", "editors")
    catalog = DynamoCatalog(aws["ddb"], aws["env"]["CATALOG_TABLE"])
    with Client(module.app, stage_name="dev") as client:
        first = upload_as(aws, client, alice, "a.jpg")
        assert first["upload"]["fields"]["x-amz-meta-uploaded-by"] == "alice-sub"
        stored = catalog.get(first["image_id"])
        assert stored is not None and stored.status == "processed" and stored.uploaded_by == "alice-sub"
        _, shown = call(client, "GET", f"/images/{first['image_id']}")
        assert "uploaded_by" not in shown  # who uploaded is not for strangers

        status, body = call(client, "DELETE", f"/images/{first['image_id']}", headers=bob)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        status, body = call(client, "DELETE", f"/images/{first['image_id']}")
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        assert catalog.get(first["image_id"]) is not None
        status, _ = call(client, "DELETE", f"/images/{first['image_id']}", headers=alice)
        assert status == 200 and tombstoned(client, catalog, first["image_id"])

        second = upload_as(aws, client, bob, "b.jpg")
        status, _ = call(client, "DELETE", f"/images/{second['image_id']}", headers=admin)
        assert status == 200 and tombstoned(client, catalog, second["image_id"])


def tombstoned(client: Any, catalog: DynamoCatalog, image_id: str) -> bool:
    """A delete leaves a tombstone: the record says deleted, keeps no renditions, and GET answers 404."""
    record = catalog.get(image_id)
    gone = call(client, "GET", f"/images/{image_id}")[0] == 404
    return record is not None and record.status == "deleted" and not record.renditions and gone


# --- browser hardening -------------------------------------------------------------------


def test_gallery_csp_names_its_origins_and_allows_no_plain_http(aws: dict[str, Any], client: Any) -> None:
    response = client.http.get("/")
    directives = {d.split()[0]: d.split()[1:] for d in response.headers["Content-Security-Policy"].split("; ")}
    everything = [source for sources in directives.values() for source in sources]
    assert "http:" not in everything and "https:" not in everything  # no scheme-wide sources
    upload = aws["env"]["UPLOAD_BUCKET"]
    assert directives["connect-src"] == ["'self'", f"https://{upload}.s3.amazonaws.com", f"https://{upload}.s3.us-east-1.amazonaws.com"]
    processed = aws["env"]["PROCESSED_BUCKET"]
    assert f"https://{processed}.s3.amazonaws.com" in directives["img-src"]
    assert not any(upload in source for source in directives["img-src"])


def test_json_answers_are_never_sniffed_nor_cached(aws: dict[str, Any], client: Any) -> None:
    for method, path in [("GET", "/images"), ("GET", "/images/" + "0" * 32), ("GET", "/health"), ("PUT", "/images")]:
        response = client.http.request(method, path, headers={"Content-Type": "application/json"})
        assert response.headers["Content-Type"].startswith("application/json"), (method, path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", (method, path, response.status_code)
        assert response.headers["Cache-Control"] == "no-store", (method, path, response.status_code)


# --- single-use upload forms -------------------------------------------------------------


def s3_event(client: Any, bucket: str, key: str, sequencer: str) -> dict[str, Any]:
    body: dict[str, Any] = client.events.generate_s3_event(bucket=bucket, key=quote_plus(key), event_name="ObjectCreated:Post")
    body["Records"][0]["s3"]["object"]["sequencer"] = sequencer
    return body


def lines(out: str, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and json.loads(line).get("event") == event]


def test_a_replayed_upload_form_is_ignored_before_any_download(
    aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The upload bucket is versioned (as in prod): each POST of the same form is a new version
    and a new event. The first is processed; the replay is ignored on HEAD with a counted
    outcome (no GetObject, no renditions written); a redelivery of the first event still works."""
    import app

    bucket = aws["env"]["UPLOAD_BUCKET"]
    aws["s3"].put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = fixture_bytes("orient_landscape_1.jpg")
    status, ticket = call(client, "POST", "/uploads", {"filename": "cat.jpg", "content_type": "image/jpeg", "size": len(data)})
    assert status == 201 and ticket["expires_in"] == 120
    form = ticket["upload"]
    nonce = form["fields"]["x-amz-meta-form-nonce"]
    assert len(nonce) == 32
    policy = json.loads(b64decode(form["fields"]["policy"]))
    assert {"x-amz-meta-form-nonce": nonce} in policy["conditions"]  # S3 refuses a form without it or with another value

    def post(body: bytes) -> None:
        response = requests.post(form["url"], data=form["fields"], files={"file": ("cat.jpg", body, "image/jpeg")}, timeout=10)
        assert response.status_code == 204, response.text

    post(data)
    client.lambda_.invoke("process_upload", s3_event(client, bucket, ticket["key"], "0A"))
    first = app.pipeline().catalog.get(ticket["image_id"])
    assert first is not None and first.status == "processed"
    capsys.readouterr()

    gets: list[str] = []
    s3_events = app.pipeline().store._s3.meta.events  # type: ignore[attr-defined]

    def count(model: Any, **_: Any) -> None:
        gets.append(model.name)

    s3_events.register("before-call.s3.GetObject", count)
    try:
        post(fixture_bytes("orient_portrait_1.jpg"))  # the same form, replayed with other bytes
        client.lambda_.invoke("process_upload", s3_event(client, bucket, ticket["key"], "0B"))
    finally:
        s3_events.unregister("before-call.s3.GetObject", count)
    [ignored] = lines(capsys.readouterr().out, "image.ignored")
    assert ignored["image_id"] == ticket["image_id"] and ignored["reason"].startswith("replayed upload form")
    assert ignored["FormReplays"] == 1 and ignored["error_code"] == "form_replayed"
    assert gets == []  # decided on HEAD: nothing downloaded
    assert app.pipeline().catalog.get(ticket["image_id"]) == first  # still the first upload's record


def test_uploads_without_a_form_keep_working(aws: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A trusted producer's PutObject (or the local inbox) carries no nonce: processed, twice."""
    import app

    bucket, key = aws["env"]["UPLOAD_BUCKET"], "uploads/producer/cat.jpg"
    for sequencer, name in (("0A", "orient_landscape_1.jpg"), ("0B", "orient_portrait_1.jpg")):
        aws["s3"].put_object(Bucket=bucket, Key=key, Body=fixture_bytes(name))
        client.lambda_.invoke("process_upload", s3_event(client, bucket, key, sequencer))
        record = app.pipeline().catalog.get(image_id_for(key))
        assert record is not None and record.status == "processed" and record.sequencer is not None
        assert record.sequencer.endswith(sequencer)
    assert lines(capsys.readouterr().out, "image.ignored") == []
