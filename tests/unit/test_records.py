"""The catalog record's one serializer: a record survives DynamoDB and the memory catalog
field for field, and a record written by a newer version (unknown fields) still loads."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from chalicelib.catalog import MemoryCatalog
from chalicelib.records import ImageRecord, RenditionRecord, from_item, to_item

PROCESSED = ImageRecord(
    image_id="a" * 32,
    source_bucket="up",
    source_key="uploads/cat.jpg",
    source_etag='"etag"',
    source_version="v1",
    content_type="image/jpeg",
    bytes=123_456,
    sequencer="0" * 30 + "0A",
    profile="web",
    profile_version="abc",
    created_at="2026-01-02T03:04:05.000+00:00",
    updated_at="2026-01-02T03:04:05.000+00:00",
    uploaded_at="2026-01-02T03:04:04.000Z",
    uploaded_by="user-sub-1",
    listing="images",
    status="processed",
    format="JPEG",
    width=600,
    height=450,
    frames=1,
    renditions=(
        RenditionRecord("thumbnail", "renditions/cat.jpg/thumbnail.jpg", "JPEG", 150, 150, 4_000),
        RenditionRecord("w320_webp", "renditions/cat.jpg/w320.webp", "WEBP", 320, 240, 9_000),
    ),
    skipped_presets=("w2000",),
    notes=("an ICC profile was converted to sRGB",),
    camera={"make": "Canon", "model": "EOS"},
    processed_at="2026-01-02T03:04:05.000+00:00",
    placeholder={"blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj", "dominant_color": "#3d3a31", "lqip": "data:image/webp;base64,UklGRg=="},
    phash="8c97878782733379",
    duplicate_of="0" * 32,
)


def test_every_field_survives_dynamodb_and_the_memory_catalog() -> None:
    assert all(
        getattr(PROCESSED, f.name) is not None
        for f in fields(PROCESSED)
        if f.name not in {"error_code", "error", "rejected_at", "removing", "deleted_at", "extra"}
    )
    assert from_item(to_item(PROCESSED)) == PROCESSED
    assert ImageRecord.from_dict(PROCESSED.to_dict()) == PROCESSED
    catalog = MemoryCatalog()
    assert catalog.put(PROCESSED)
    assert catalog.get(PROCESSED.image_id) == PROCESSED


def test_the_stored_form_is_plain_json_without_empty_fields() -> None:
    tombstone = ImageRecord(image_id="b" * 32, status="deleted", renditions=(), removing=("renditions/x/a.jpg",), listing="images")
    stored = tombstone.to_dict()
    assert stored == {
        "image_id": "b" * 32,
        "listing": "images",
        "status": "deleted",
        "renditions": [],  # an empty list is a value (no renditions), unlike an absent field
        "removing": ["renditions/x/a.jpg"],
    }
    assert "removing" not in replace(tombstone, removing=None).to_dict()
    assert set(to_item(tombstone)) == set(stored)
    rendition = PROCESSED.to_dict()["renditions"][0]
    assert rendition == {
        "preset": "thumbnail",
        "key": "renditions/cat.jpg/thumbnail.jpg",
        "format": "JPEG",
        "width": 150,
        "height": 150,
        "bytes": 4000,
    }


def test_unknown_fields_load_and_are_written_back_unchanged() -> None:
    """A record written by a newer version (a field this code does not know, in the image and
    in a rendition) loads, keeps those fields, and a rewrite does not drop them."""
    item: dict[str, Any] = to_item(PROCESSED)
    item["sharpness"] = {"S": "f0f0"}
    item["ratio"] = {"N": "1.5"}
    item["renditions"]["L"][0]["M"]["blurhash"] = {"S": "LEHV6n"}
    loaded = from_item(item)
    assert loaded.extra == {"sharpness": "f0f0", "ratio": 1.5}
    assert loaded.renditions is not None and loaded.renditions[0].extra == {"blurhash": "LEHV6n"}
    assert replace(loaded, extra={}, renditions=PROCESSED.renditions) == PROCESSED
    assert to_item(loaded) == item
    view = loaded.public_view()  # the public view is an allow-list: unknown fields stay private
    assert "sharpness" not in view and "blurhash" not in view["renditions"][0]


def test_a_record_with_only_an_id_loads() -> None:
    record = from_item({"image_id": {"S": "c" * 32}, "label": {"S": "seed"}})
    assert record.image_id == "c" * 32 and record.status is None and record.renditions is None
    assert record.rendition_keys == set() and record.to_dict() == {"image_id": "c" * 32, "label": "seed"}


def test_an_animated_rendition_says_so_and_a_still_one_stores_nothing_more() -> None:
    moving = RenditionRecord("w320_animated", "renditions/cat.gif/w320.animated.webp", "WEBP", 320, 240, 9_000, animated=True, frames=24)
    assert moving.to_dict()["animated"] is True and moving.to_dict()["frames"] == 24
    assert RenditionRecord.from_dict(moving.to_dict()) == moving
    assert moving.public_view()["animated"] is True and moving.public_view()["frames"] == 24  # shown by the API
    still = RenditionRecord("w320_webp", "renditions/cat.gif/w320.webp", "WEBP", 320, 240, 9_000)
    assert "animated" not in still.to_dict() and "frames" not in still.to_dict()
    assert "animated" not in still.public_view() and "frames" not in still.public_view()
