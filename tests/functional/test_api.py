"""The REST API through chalice.test.Client under moto: real buckets, the catalog table with
its two indexes, real uploads processed by the real handler."""

from __future__ import annotations

import io
import json
import re
from base64 import b64decode, urlsafe_b64encode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from chalice.test import Client

from chalicelib.catalog import DynamoCatalog
from chalicelib.keys import image_id_for
from chalicelib.records import ImageRecord
from tests.conftest import fixture_bytes, moto_stack

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    # One moto backend, one set of the app's boto3 clients and one test client for the module
    # (building them costs about a second per test); every test starts from empty resources.
    with moto_stack() as resources:
        yield resources


@pytest.fixture
def aws(stack: dict[str, Any]) -> dict[str, Any]:
    s3, env = stack["s3"], stack["env"]
    for bucket in (env["UPLOAD_BUCKET"], env["PROCESSED_BUCKET"]):
        try:
            keys = [{"Key": o["Key"]} for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        except s3.exceptions.NoSuchBucket:  # a test removed it
            s3.create_bucket(Bucket=bucket)
            continue
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    table = env["CATALOG_TABLE"]
    for item in stack["ddb"].scan(TableName=table, ProjectionExpression="image_id")["Items"]:  # the test's own check, not the app
        stack["ddb"].delete_item(TableName=table, Key=item)
    return stack


@pytest.fixture(scope="module")
def shared_client(stack: dict[str, Any]) -> Iterator[Any]:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


@pytest.fixture
def client(aws: dict[str, Any], shared_client: Any) -> Any:
    return shared_client


def call(client: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    response = client.http.request(method, path, body=raw, headers={**JSON, **(headers or {})})
    content_type = response.headers.get("Content-Type", "")
    parsed = json.loads(response.body) if content_type.startswith("application/json") and response.body else response.body
    return response.status_code, parsed


def seed(aws: dict[str, Any], count: int, *, rejected_every: int = 0) -> list[str]:
    """`count` catalog records one minute apart (newest last); returns their ids newest first."""
    catalog = DynamoCatalog(aws["ddb"], aws["env"]["CATALOG_TABLE"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for n in range(count):
        key = f"uploads/seed/{n:03d}.jpg"
        rejected = bool(rejected_every) and n % rejected_every == 0
        when = (start + timedelta(minutes=n)).isoformat(timespec="milliseconds")
        catalog.put(
            ImageRecord.from_dict(
                {
                    "image_id": image_id_for(key),
                    "source_bucket": aws["env"]["UPLOAD_BUCKET"],
                    "source_key": key,
                    "status": "rejected" if rejected else "processed",
                    "renditions": []
                    if rejected
                    else [
                        {
                            "preset": "w320_jpeg",
                            "key": f"renditions/seed/{n:03d}.jpg/w320.jpg",
                            "format": "JPEG",
                            "width": 320,
                            "height": 240,
                            "bytes": 1000,
                        }
                    ],
                    "listing": "images",
                    "updated_at": when,
                    "bytes": 5000,
                    **({"error_code": "not_an_image", "error": "text, not an image"} if rejected else {}),
                }
            )
        )
        ids.append(image_id_for(key))
    return ids[::-1]


def upload_and_process(aws: dict[str, Any], client: Any, filename: str, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    """What a client does: ask for a form, POST the file to S3, then (S3 would) trigger the processor."""
    status, ticket = call(client, "POST", "/uploads", {"filename": filename, "content_type": content_type, "size": len(data)})
    assert status == 201, ticket
    form = ticket["upload"]
    response = requests.post(form["url"], data=form["fields"], files={"file": (filename, data, content_type)}, timeout=10)
    assert response.status_code == 204, response.text
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(ticket["key"]))
    client.lambda_.invoke("process_upload", event)
    return ticket


@pytest.fixture
def operations(aws: dict[str, Any]) -> Iterator[list[str]]:
    """Every DynamoDB operation the app's client makes during the test."""
    import app

    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    events = app.api_context().catalog._db.meta.events  # type: ignore[attr-defined]
    events.register("before-call.dynamodb.*", record)
    yield seen
    events.unregister("before-call.dynamodb.*", record)


# --- GET /images -----------------------------------------------------------------------


def test_listing_pages_newest_first_with_a_query_never_a_scan(aws: dict[str, Any], client: Any, operations: list[str]) -> None:
    expected = seed(aws, 7)
    pages, token = [], None
    while True:
        status, body = call(client, "GET", "/images?limit=3" + (f"&next={token}" if token else ""))
        assert status == 200, body
        pages.append([item["image_id"] for item in body["items"]])
        token = body["next"]
        if token is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == expected  # every record once, newest first
    assert "Query" in operations and "Scan" not in operations


def test_last_full_page_says_there_is_no_next(aws: dict[str, Any], client: Any) -> None:
    seed(aws, 6)
    status, first = call(client, "GET", "/images?limit=3")
    status, second = call(client, "GET", f"/images?limit=3&next={first['next']}")
    assert status == 200 and len(second["items"]) == 3
    assert second["next"] is None  # no cursor that leads to an empty page


def test_status_filter_uses_the_status_index(aws: dict[str, Any], client: Any) -> None:
    ids = seed(aws, 9, rejected_every=3)  # records 0, 3, 6 are rejected
    status, body = call(client, "GET", "/images?status=rejected&limit=2")
    assert status == 200
    assert [i["status"] for i in body["items"]] == ["rejected", "rejected"]
    assert body["items"][0]["error_code"] == "not_an_image"
    _, rest = call(client, "GET", f"/images?status=rejected&limit=2&next={body['next']}")
    assert len(rest["items"]) == 1 and rest["next"] is None
    rejected = {image_id_for(f"uploads/seed/{n:03d}.jpg") for n in (0, 3, 6)}
    assert {i["image_id"] for i in body["items"] + rest["items"]} == rejected
    _, processed = call(client, "GET", "/images?status=processed&limit=100")
    assert [i["image_id"] for i in processed["items"]] == [i for i in ids if i not in rejected]


def test_listing_items_carry_a_thumbnail_url(aws: dict[str, Any], client: Any) -> None:
    seed(aws, 2, rejected_every=2)
    _, body = call(client, "GET", "/images")
    by_status = {i["status"]: i for i in body["items"]}
    assert "renditions/seed/001.jpg/w320.jpg" in by_status["processed"]["thumbnail_url"]
    assert by_status["rejected"]["thumbnail_url"] is None


def _token(payload: Any) -> str:
    return urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD_TOKENS = {
    "garbage": "not-a-token",
    "symbols": "%%%",
    "list": _token(["a", "b"]),
    "bad-id": _token({"i": "x", "u": "2026-01-01T00:00:00.000+00:00", "s": None}),
    "bad-time": _token({"i": "0" * 32, "u": "yesterday", "s": None}),
    "extra-key": _token({"i": "0" * 32, "u": "2026-01-01T00:00:00.000+00:00", "s": None, "extra": 1}),
    "too-long": "A" * 600,
}


def test_bad_cursor_is_a_400_naming_next(aws: dict[str, Any], client: Any) -> None:
    # One moto setup for all cases (each costs a second of client creation otherwise).
    for name, token in BAD_TOKENS.items():
        status, body = call(client, "GET", f"/images?next={quote_plus(token)}")
        assert status == 400, (name, body)
        assert (body["error"]["field"], body["error"]["code"]) == ("next", "invalid_parameter"), name


def test_cursor_of_another_filter_is_refused(aws: dict[str, Any], client: Any) -> None:
    seed(aws, 6, rejected_every=2)
    _, rejected = call(client, "GET", "/images?status=rejected&limit=1")
    status, body = call(client, "GET", f"/images?limit=1&next={rejected['next']}")
    assert status == 400 and body["error"]["field"] == "next"


def test_bad_listing_parameters(aws: dict[str, Any], client: Any) -> None:
    for query, field in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("status=gone", "status"),
        ("status=", "status"),
        ("limit=", "limit"),
    ]:
        status, body = call(client, "GET", f"/images?{query}")
        assert (status, body["error"]["field"]) == (400, field), query


# --- GET /images/{id}, POST /uploads end to end -----------------------------------------


def test_upload_then_read_back_with_working_urls_and_srcset(aws: dict[str, Any], client: Any) -> None:
    data = fixture_bytes("alpha_paper_2048x1536.png")
    ticket = upload_and_process(aws, client, "Paper sample.png", data, "image/png")
    assert re.fullmatch(r"uploads/\d{4}-\d{2}-\d{2}/[0-9a-f]{32}-Paper-sample\.png", ticket["key"])
    assert ticket["image_id"] == image_id_for(ticket["key"])

    status, image = call(client, "GET", f"/images/{ticket['image_id']}")
    assert status == 200, image
    assert image["status"] == "processed" and image["source_key"] == ticket["key"]
    assert (image["width"], image["height"], image["bytes"]) == (2048, 1536, len(data))
    presets = {r["preset"]: r for r in image["renditions"]}
    assert set(presets) == {"thumbnail", *(f"w{w}_{fmt}" for w in (320, 1024, 2048) for fmt in ("jpeg", "webp", "avif"))}
    for rendition in image["renditions"]:
        fetched = requests.get(rendition["url"], timeout=10)  # the presigned GET really serves the object
        assert fetched.status_code == 200
        assert len(fetched.content) == rendition["bytes"]
    jpeg = image["srcset"]["jpeg"].split(", ")
    assert [entry.rsplit(" ", 1)[1] for entry in jpeg] == ["320w", "1024w", "2048w"]  # thumbnail (a crop) left out
    assert jpeg[0].rsplit(" ", 1)[0] == presets["w320_jpeg"]["url"]
    assert image["srcset"]["webp"].endswith(" 2048w")


def test_presigned_urls_are_sigv4_and_short_lived(aws: dict[str, Any], client: Any) -> None:
    ticket = upload_and_process(aws, client, "cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert ticket["upload"]["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    _, image = call(client, "GET", f"/images/{ticket['image_id']}")
    url = image["renditions"][0]["url"]
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=120" in url


def test_upload_form_conditions_match_the_processor_limits(aws: dict[str, Any], client: Any) -> None:
    status, ticket = call(client, "POST", "/uploads", {"filename": "a.webp", "content_type": "image/webp"})
    assert status == 201
    fields = ticket["upload"]["fields"]
    policy = json.loads(b64decode(fields["policy"]))
    assert ["content-length-range", 1, 52428800] in policy["conditions"]
    assert {"Content-Type": "image/webp"} in policy["conditions"]
    assert {"key": ticket["key"]} in policy["conditions"] and {"bucket": aws["env"]["UPLOAD_BUCKET"]} in policy["conditions"]
    assert fields["Content-Type"] == "image/webp"
    assert ticket["max_bytes"] == 52428800 and ticket["expires_in"] == 120


def test_same_filename_twice_gets_two_keys(aws: dict[str, Any], client: Any) -> None:
    keys = {call(client, "POST", "/uploads", {"filename": "IMG_0001.JPG", "content_type": "image/jpeg"})[1]["key"] for _ in range(2)}
    assert len(keys) == 2


def test_hostile_filename_stays_inside_the_prefix(aws: dict[str, Any], client: Any) -> None:
    status, ticket = call(client, "POST", "/uploads", {"filename": "../../etc/pa ss\x00wd<script>.jpg", "content_type": "image/jpeg"})
    assert status == 201
    assert re.fullmatch(r"uploads/\d{4}-\d{2}-\d{2}/[0-9a-f]{32}-pa-ss-wd-script-?\.jpg", ticket["key"]), ticket["key"]


BAD_UPLOADS = [
    ({"content_type": "image/jpeg"}, 400, "missing_field", "filename"),
    ({"filename": "  ", "content_type": "image/jpeg"}, 400, "missing_field", "filename"),
    ({"filename": "a.jpg"}, 400, "missing_field", "content_type"),
    ({"filename": "a.txt", "content_type": "text/plain"}, 400, "unsupported_type", "content_type"),
    ({"filename": "a.svg", "content_type": "image/svg+xml"}, 400, "unsupported_type", "content_type"),
    ({"filename": "a.jpg", "content_type": 5}, 400, "invalid_parameter", "content_type"),
    ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 52428801}, 413, "too_large", "size"),
    ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 0}, 400, "empty_file", "size"),
    ({"filename": "a.jpg", "content_type": "image/jpeg", "size": "big"}, 400, "invalid_parameter", "size"),
    ({"filename": "x" * 256 + ".jpg", "content_type": "image/jpeg"}, 400, "invalid_parameter", "filename"),
    ("not json", 400, "invalid_json", "body"),
    ("[1, 2]", 400, "invalid_json", "body"),
    (None, 400, "missing_body", "body"),
    (json.dumps({"filename": "a.jpg", "content_type": "image/jpeg", "pad": "x" * 20000}), 413, "body_too_large", "body"),
]


def test_bad_upload_requests(aws: dict[str, Any], client: Any) -> None:
    for body, status, code, field in BAD_UPLOADS:
        got_status, got = call(client, "POST", "/uploads", body)
        assert (got_status, got["error"]["code"], got["error"]["field"]) == (status, code, field), body
        assert got["error"]["message"]
    assert _objects(aws, "UPLOAD_BUCKET") == []  # nothing was stored for any of them


def test_wrong_request_content_type_is_a_json_415(aws: dict[str, Any], client: Any) -> None:
    status, body = call(client, "POST", "/uploads", "filename=a.jpg", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


def test_wrong_method_is_a_json_405(aws: dict[str, Any], client: Any) -> None:
    status, body = call(client, "PUT", "/uploads", {})
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


def test_unknown_or_malformed_id(aws: dict[str, Any], client: Any) -> None:
    for image_id, status, code in [("0" * 32, 404, "not_found"), ("nope", 400, "invalid_parameter"), ("A" * 32, 400, "invalid_parameter")]:
        for method in ("GET", "DELETE"):
            got_status, body = call(client, method, f"/images/{image_id}")
            assert (got_status, body["error"]["code"]) == (status, code), (method, image_id)


def test_rejected_upload_reads_back_with_its_reason(aws: dict[str, Any], client: Any) -> None:
    ticket = upload_and_process(aws, client, "notes.jpg", b"these are my notes, not a photo")
    status, image = call(client, "GET", f"/images/{ticket['image_id']}")
    assert status == 200
    assert image["status"] == "rejected" and image["error_code"] == "not_an_image"
    assert image["renditions"] == [] and image["srcset"] == {}


# --- DELETE /images/{id} -----------------------------------------------------------------


def _objects(aws: dict[str, Any], bucket: str) -> list[str]:
    return sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["env"][bucket]).get("Contents", []))


def test_delete_removes_renditions_and_source_and_leaves_a_tombstone(aws: dict[str, Any], client: Any) -> None:
    keep = upload_and_process(aws, client, "keep.jpg", fixture_bytes("orient_landscape_1.jpg"))
    gone = upload_and_process(aws, client, "gone.jpg", fixture_bytes("orient_landscape_2.jpg"))
    status, body = call(client, "DELETE", f"/images/{gone['image_id']}")
    assert status == 200, body
    assert body["deleted"] == {"record": True, "renditions": 4, "source": True, "cdn_invalidated": False}
    assert call(client, "GET", f"/images/{gone['image_id']}")[0] == 404  # a tombstone, listed only with ?status=deleted
    assert gone["image_id"] not in [i["image_id"] for i in call(client, "GET", "/images")[1]["items"]]
    assert all("gone.jpg" not in k for k in _objects(aws, "PROCESSED_BUCKET"))
    assert any("keep.jpg" in k for k in _objects(aws, "PROCESSED_BUCKET"))
    assert _objects(aws, "UPLOAD_BUCKET") == [keep["key"]]
    assert call(client, "GET", f"/images/{keep['image_id']}")[0] == 200


def test_delete_keep_source_keeps_the_upload_and_the_old_source_flag_is_a_no_op(aws: dict[str, Any], client: Any) -> None:
    ticket = upload_and_process(aws, client, "kept.jpg", fixture_bytes("orient_landscape_2.jpg"))
    status, body = call(client, "DELETE", f"/images/{ticket['image_id']}?keep_source=true&source=true")
    assert status == 200 and body["deleted"]["source"] is False
    assert _objects(aws, "UPLOAD_BUCKET") == [ticket["key"]] and _objects(aws, "PROCESSED_BUCKET") == []
    assert call(client, "DELETE", f"/images/{ticket['image_id']}?source=maybe")[1]["error"]["field"] == "source"
    assert call(client, "DELETE", f"/images/{ticket['image_id']}?keep_source=maybe")[1]["error"]["field"] == "keep_source"


# --- GET /health, errors, gallery --------------------------------------------------------


def test_health_reports_settings_and_reachability(aws: dict[str, Any], client: Any) -> None:
    assert call(client, "GET", "/health") == (200, {"status": "ok"})  # terse for anyone
    status, body = call(client, "GET", "/health/details")  # the write auth's (open in dev)
    assert status == 200 and body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values()) and len(body["checks"]) == 4
    assert body["settings"]["upload_bucket"] == aws["env"]["UPLOAD_BUCKET"]
    assert body["settings"]["write_auth"] == "none"
    assert "testing" not in json.dumps(body)  # no credentials anywhere

    aws["s3"].delete_bucket(Bucket=aws["env"]["PROCESSED_BUCKET"])
    assert call(client, "GET", "/health") == (503, {"status": "degraded"})
    status, body = call(client, "GET", "/health/details")
    assert status == 503 and body["status"] == "degraded"
    assert body["checks"]["processed_bucket"]["ok"] is False and "404" in body["checks"]["processed_bucket"]["error"]
    assert body["checks"]["upload_bucket"]["ok"] is True


def test_unexpected_error_is_a_json_500_without_traceback(aws: dict[str, Any], client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    def explode(**_: Any) -> Any:
        raise RuntimeError("secret internals /var/task/chalicelib/catalog.py")

    monkeypatch.setattr(app.api_context().catalog, "list_images", explode)
    status, body = call(client, "GET", "/images")
    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "An internal error occurred; it has been logged."}}


def test_gallery_page_is_self_contained_html(aws: dict[str, Any], client: Any) -> None:
    response = client.http.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert "<script>" in page and "<style>" in page
    # nothing loaded from elsewhere: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp
    # the upload limit in force, for the page to refuse a too-large file before uploading it
    assert '<meta name="max-upload-bytes" content="52428800">' in page


def test_sources_deleted_by_their_owner_leave_the_listing(aws: dict[str, Any], client: Any) -> None:
    kept = upload_and_process(aws, client, "kept.jpg", fixture_bytes("orient_landscape_1.jpg"))
    gone = upload_and_process(aws, client, "gone.jpg", fixture_bytes("orient_landscape_2.jpg"))
    aws["s3"].delete_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=gone["key"])
    removed = client.events.generate_s3_event(
        bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(gone["key"]), event_name="ObjectRemoved:Delete"
    )
    client.lambda_.invoke("remove_renditions", removed)

    _, listing = call(client, "GET", "/images?limit=1")  # the tombstone is newest: filtered, not an empty page
    assert [i["image_id"] for i in listing["items"]] == [kept["image_id"]] and listing["next"] is None
    _, tombstones = call(client, "GET", "/images?status=deleted")
    assert [(i["image_id"], i["status"], i["thumbnail_url"]) for i in tombstones["items"]] == [(gone["image_id"], "deleted", None)]
    assert call(client, "GET", f"/images/{gone['image_id']}")[0] == 404  # deleted: gone for GET


def _smaller_copy(data: bytes) -> bytes:
    """The same photo re-encoded at JPEG quality 70 and half the size, as users re-upload it."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.resize((image.size[0] // 2, image.size[1] // 2)).save(out, "JPEG", quality=70)
    return out.getvalue()


def test_image_facts_and_near_duplicates(aws: dict[str, Any], client: Any, operations: list[str]) -> None:
    photo = fixture_bytes("orient_landscape_1.jpg")
    first = upload_and_process(aws, client, "beach.jpg", photo)["image_id"]
    copy = upload_and_process(aws, client, "beach-small.jpg", _smaller_copy(photo))["image_id"]
    other = upload_and_process(aws, client, "paper.png", fixture_bytes("alpha_paper_2048x1536.png"), "image/png")["image_id"]
    _, record = call(client, "GET", f"/images/{copy}")
    assert set(record["placeholder"]) == {"blurhash", "dominant_color", "lqip"} and re.fullmatch(r"[0-9a-f]{16}", record["phash"])
    assert record["duplicate_of"] == first
    _, listing = call(client, "GET", "/images")
    assert {i["image_id"]: i.get("duplicate_of") for i in listing["items"]} == {first: None, copy: first, other: None}

    operations.clear()
    status, similar = call(client, "GET", f"/images/{first}/similar")
    assert status == 200 and [(i["image_id"], i["distance"] <= similar["max_distance"]) for i in similar["items"]] == [(copy, True)]
    assert similar["items"][0]["thumbnail_url"].startswith("http")
    assert sorted(operations) == ["BatchGetItem", "BatchGetItem", "GetItem"]  # the record, its bands, the matches: no Scan
    assert call(client, "GET", f"/images/{other}/similar")[1]["items"] == []
    assert call(client, "GET", f"/images/{'0' * 32}/similar")[0] == 404
    assert call(client, "GET", "/images/nope/similar")[0] == 400

    # Deleting the original takes it out of the index: the copy has no near-duplicate left.
    assert call(client, "DELETE", f"/images/{first}")[0] == 200
    assert call(client, "GET", f"/images/{copy}/similar")[1]["items"] == []
