"""What strangers may see of a record: the API and the events show an allow-list of fields
(records.PUBLIC_FIELDS), never the stored item."""

from __future__ import annotations

from dataclasses import fields, replace

from chalicelib.records import (
    FAILED_MESSAGE,
    INTERNAL_FIELDS,
    PUBLIC_FIELDS,
    RENDITION_PUBLIC_FIELDS,
    ImageRecord,
    RenditionRecord,
)
from tests.unit.test_records import PROCESSED

# What must never reach a client: storage coordinates, write ordering, index keys, pending work.
NEVER_SHOWN = {"source_bucket", "source_etag", "source_version", "sequencer", "listing", "removing", "uploaded_by"}


def test_every_record_field_is_either_public_or_internal() -> None:
    """A new field has to choose: an unclassified field fails here instead of leaking."""
    names = {f.name for f in fields(ImageRecord)}
    assert set(PUBLIC_FIELDS) | INTERNAL_FIELDS == names
    assert not set(PUBLIC_FIELDS) & INTERNAL_FIELDS
    assert set(RENDITION_PUBLIC_FIELDS) == {f.name for f in fields(RenditionRecord)} - {"extra"}


def test_public_view_leaves_out_internal_fields() -> None:
    record = replace(PROCESSED, removing=("renditions/x/old.jpg",), extra={"internal_note": "x"})
    view = record.public_view()
    assert not NEVER_SHOWN & set(view)
    assert "internal_note" not in view
    assert view["image_id"] == record.image_id and view["source_key"] == "uploads/cat.jpg"
    assert view["renditions"][0] == {
        "preset": "thumbnail",
        "key": "renditions/cat.jpg/thumbnail.jpg",
        "format": "JPEG",
        "width": 150,
        "height": 150,
        "bytes": 4000,
    }


def test_a_failed_record_shows_a_generic_message_not_the_exception() -> None:
    """The exception text names buckets, and in AWS an AccessDenied names the role and account."""
    leaky = "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/image-pipeline-prod/x is not authorized (NoSuchBucket up)"
    failed = ImageRecord(image_id="f" * 32, status="failed", error_code="internal_error", error=leaky, source_bucket="up")
    view = failed.public_view()
    assert view["error"] == FAILED_MESSAGE and view["error_code"] == "internal_error"
    assert "123456789012" not in str(view) and "up" not in view.values()


def test_a_rejection_keeps_its_reason() -> None:
    """Rejections describe the client's file (their own doing): the reason helps them."""
    rejected = ImageRecord(image_id="r" * 32, status="rejected", error_code="not_an_image", error="text, not an image")
    assert rejected.public_view()["error"] == "text, not an image"
