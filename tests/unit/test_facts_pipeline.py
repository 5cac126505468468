"""Image facts through the upload use case: stored with the record, carried by the event,
near-duplicates flagged (or rejected) through the index, on the in-memory catalog and on
DynamoDB (moto), and the index kept in step with removals."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from chalicelib import keys, processing, removal
from chalicelib.adapters import Adapters
from chalicelib.catalog import DynamoCatalog, MemoryCatalog
from chalicelib.duplicates import PREFIX
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.outcomes import Outcome
from chalicelib.presets import WEB
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore
from tests.conftest import create_catalog_table, fixture_bytes

SETTINGS = Settings.from_env({"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "catalog", "EVENTS_TOPIC": "ev"})
PHOTO = fixture_bytes("orient_landscape_1.jpg")
OTHER = fixture_bytes("alpha_paper_2048x1536.png")


def variant(data: bytes, quality: int = 70, scale: float = 0.5) -> bytes:
    """The same photo as a user re-uploads it: re-encoded and downscaled."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


class Clock:
    def __init__(self) -> None:
        self.minute = 0

    def __call__(self) -> datetime:
        self.minute += 1  # every record a minute later: "earliest" is well defined
        return datetime(2026, 1, 2, 3, self.minute, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def adapters(request: pytest.FixtureRequest) -> Iterator[Adapters]:
    def build(catalog: Any, settings: Settings = SETTINGS) -> Adapters:
        return Adapters(settings, WEB, MemoryObjectStore(), catalog, MemoryNotifier(), clock=Clock())

    if request.param == "memory":
        yield build(MemoryCatalog())
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_catalog_table(client, SETTINGS.catalog_table)
        yield build(DynamoCatalog(client, SETTINGS.catalog_table))


def upload(p: Adapters, key: str, data: bytes) -> Outcome:
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", key, data)
    p.store.uploads = getattr(p.store, "uploads", 0) + 1  # type: ignore[attr-defined]
    return processing.handle_upload(p, Upload("up", key, sequencer=f"{p.store.uploads:04X}"))  # type: ignore[attr-defined]


def events(p: Adapters, kind: str) -> list[dict[str, Any]]:
    assert isinstance(p.notifier, MemoryNotifier)
    return [body for body in (json.loads(m.message) for m in p.notifier.messages) if body.get("type", body.get("event")) == kind]


def record(p: Adapters, key: str) -> dict[str, Any]:
    stored = p.catalog.get(keys.image_id_for(key))
    assert stored is not None
    return stored.public_view()


def test_a_processed_image_carries_its_facts_in_the_record_and_the_event(adapters: Adapters) -> None:
    assert upload(adapters, "uploads/beach.jpg", PHOTO).status == "processed"
    stored = record(adapters, "uploads/beach.jpg")
    assert set(stored["placeholder"]) == {"blurhash", "dominant_color", "lqip"}
    assert re.fullmatch(r"#[0-9a-f]{6}", stored["placeholder"]["dominant_color"])
    assert stored["placeholder"]["lqip"].startswith("data:image/webp;base64,")
    assert re.fullmatch(r"[0-9a-f]{16}", stored["phash"]) and "duplicate_of" not in stored
    (event,) = events(adapters, "image.processed")
    assert event["placeholder"] == stored["placeholder"] and event["phash"] == stored["phash"] and "duplicate_of" not in event


def test_a_re_encoded_smaller_copy_is_flagged_as_a_duplicate_of_the_earliest(adapters: Adapters) -> None:
    upload(adapters, "uploads/trip/beach.jpg", PHOTO)
    assert upload(adapters, "uploads/other.png", OTHER).status == "processed"
    first = keys.image_id_for("uploads/trip/beach.jpg")
    copy = upload(adapters, "uploads/home/beach-small.jpg", variant(PHOTO))
    assert copy.status == "processed"  # a flag, not a reject: renditions as usual
    assert record(adapters, "uploads/home/beach-small.jpg")["duplicate_of"] == first
    assert [r["preset"] for r in record(adapters, "uploads/home/beach-small.jpg")["renditions"]] == ["thumbnail"]  # 300 px wide: no w320
    assert events(adapters, "image.processed")[-1]["duplicate_of"] == first
    # A third copy points at the earliest, not at the copy; the other photo is nobody's duplicate.
    upload(adapters, "uploads/again.jpg", variant(PHOTO, quality=50, scale=0.75))
    assert record(adapters, "uploads/again.jpg")["duplicate_of"] == first
    assert "duplicate_of" not in record(adapters, "uploads/other.png")
    # Reprocessing the original leaves it the original.
    upload(adapters, "uploads/trip/beach.jpg", PHOTO)
    assert "duplicate_of" not in record(adapters, "uploads/trip/beach.jpg")


def test_with_duplicates_reject_a_copy_is_rejected_and_leaves_no_renditions(adapters: Adapters) -> None:
    strict = replace(adapters, settings=replace(SETTINGS, duplicates="reject"))
    upload(strict, "uploads/beach.jpg", PHOTO)
    assert isinstance(strict.store, MemoryObjectStore)
    before = strict.store.keys("out")
    outcome = upload(strict, "uploads/copy.jpg", variant(PHOTO))
    assert outcome.status == "rejected"
    stored = record(strict, "uploads/copy.jpg")
    assert stored["error_code"] == "duplicate" and stored["duplicate_of"] == keys.image_id_for("uploads/beach.jpg")
    assert strict.store.keys("out") == before
    assert events(strict, "image.rejected")[-1]["error_code"] == "duplicate"


def test_a_deleted_original_is_no_longer_anyones_original(adapters: Adapters) -> None:
    upload(adapters, "uploads/beach.jpg", PHOTO)
    assert isinstance(adapters.store, MemoryObjectStore)
    adapters.store.remove("up", "uploads/beach.jpg")
    assert removal.remove_source(adapters, Upload("up", "uploads/beach.jpg", "ObjectRemoved:Delete", sequencer="FFFF")).status == "deleted"
    upload(adapters, "uploads/copy.jpg", variant(PHOTO))
    assert "duplicate_of" not in record(adapters, "uploads/copy.jpg")


def test_band_items_never_show_in_the_listing(adapters: Adapters) -> None:
    upload(adapters, "uploads/beach.jpg", PHOTO)
    upload(adapters, "uploads/copy.jpg", variant(PHOTO))
    listed = adapters.catalog.list_images(status=None, limit=50).items
    assert sorted(r.image_id for r in listed) == sorted(keys.image_id_for(k) for k in ("uploads/beach.jpg", "uploads/copy.jpg"))
    assert not any(r.image_id.startswith(PREFIX) for r in listed)
