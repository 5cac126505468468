"""The catalog record: what is known about one image, as a frozen dataclass, with the one
serializer to and from DynamoDB items (the in-memory catalog uses it too) and the one public
view the API and the events show.

Every field but `image_id` is optional and an absent field is not stored, so adding one is a
one-line change here. Fields this code does not know (written by a newer version) are kept in
`extra`: such a record still loads, and writes back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import cache
from typing import Any


@dataclass(frozen=True)
class RenditionRecord:
    """A rendition as the catalog records it (no pixels)."""

    preset: str
    key: str
    format: str
    width: int
    height: int
    bytes: int
    animated: bool | None = None  # set (true) only on an animated rendition (animated WebP)
    frames: int | None = None  # its frame count, with `animated`
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> RenditionRecord:
        return _from_dict(RenditionRecord, data)

    def public_view(self) -> dict[str, Any]:
        """The allow-listed fields (RENDITION_PUBLIC_FIELDS); unknown `extra` fields never show."""
        view = {name: getattr(self, name) for name in RENDITION_PUBLIC_FIELDS}
        return {name: value for name, value in view.items() if value is not None}  # `animated`, `frames`: only when set


@dataclass(frozen=True)
class ImageRecord:
    """One image's catalog entry. Which fields a status sets: see processing and removal."""

    image_id: str
    source_bucket: str | None = None
    source_key: str | None = None
    source_etag: str | None = None
    source_version: str | None = None
    content_type: str | None = None
    bytes: int | None = None
    sequencer: str | None = None  # S3's, left-padded (catalog.sequencer_order): orders writes
    profile: str | None = None
    profile_version: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    uploaded_at: str | None = None
    uploaded_by: str | None = None  # the uploader (Cognito `sub`) when WRITE_AUTH=cognito issued the form
    # Index keys: GSI `by_updated` (listing, updated_at) lists every image newest first;
    # GSI `by_status` (status, updated_at) filters by status. No Scan needed.
    listing: str | None = None
    status: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    renditions: tuple[RenditionRecord, ...] | None = None
    skipped_presets: tuple[str, ...] | None = None
    notes: tuple[str, ...] | None = None
    camera: Mapping[str, str] | None = None
    processed_at: str | None = None
    error_code: str | None = None
    error: str | None = None
    rejected_at: str | None = None
    removing: tuple[str, ...] | None = None  # a tombstone's files until they are gone
    deleted_at: str | None = None
    # Image facts (chalicelib/facts, chalicelib/duplicates): {blurhash, dominant_color, lqip},
    # the 64-bit perceptual hash (16 hex digits), the earlier image this one nearly duplicates.
    placeholder: Mapping[str, str] | None = None
    phash: str | None = None
    duplicate_of: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: plain JSON types, absent (None) fields left out, `extra` kept."""
        return _to_dict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ImageRecord:
        """Tolerant: unknown fields go to `extra`, absent ones stay None."""
        return _from_dict(ImageRecord, data)

    def public_view(self) -> dict[str, Any]:
        """What the API and the events may show of this record: the one place that decides.

        An allow-list (PUBLIC_FIELDS): a field added to the record stays private until it is
        listed there (tests/unit/test_records.py makes every field choose). A failed record's
        `error` is replaced by a generic message: exception text names buckets, roles, accounts."""
        stored = self.to_dict()
        view = {name: stored[name] for name in PUBLIC_FIELDS if name in stored}
        if self.renditions is not None:
            view["renditions"] = [r.public_view() for r in self.renditions]
        if self.status == FAILED and "error" in view:
            view["error"] = FAILED_MESSAGE
        return view

    @property
    def rendition_keys(self) -> set[str]:
        return {r.key for r in self.renditions or ()}

    @property
    def keys_to_remove(self) -> list[str]:
        """What deleting it removes: the renditions it lists and any a half-done removal left."""
        return sorted(self.rendition_keys | set(self.removing or ()))


# What a client sees (GET /images, GET /images/{id}) and what the events carry of a record.
PUBLIC_FIELDS = (
    "image_id",
    "status",
    "source_key",
    "content_type",
    "bytes",
    "profile",
    "profile_version",
    "created_at",
    "updated_at",
    "uploaded_at",
    "processed_at",
    "rejected_at",
    "deleted_at",
    "format",
    "width",
    "height",
    "frames",
    "renditions",
    "skipped_presets",
    "notes",
    "camera",
    "error_code",
    "error",
    "placeholder",
    "phash",
    "duplicate_of",
)
# Never shown: storage coordinates (bucket names, ETag, version id), write ordering (S3's
# sequencer), index keys, a tombstone's pending files, the uploader's identity.
INTERNAL_FIELDS = frozenset({"source_bucket", "source_etag", "source_version", "sequencer", "listing", "removing", "uploaded_by", "extra"})
RENDITION_PUBLIC_FIELDS = ("preset", "key", "format", "width", "height", "bytes", "animated", "frames")
FAILED = "failed"
FAILED_MESSAGE = "processing failed on our side; the error has been logged and the upload will be retried"

_NESTED = {"renditions": RenditionRecord.from_dict}


def _to_dict(record: ImageRecord | RenditionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name == "extra" or value is None:
            continue
        if isinstance(value, tuple):
            value = [v.to_dict() if isinstance(v, RenditionRecord) else v for v in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return {**out, **{k: v for k, v in record.extra.items() if k not in out and v is not None}}


def _from_dict[R: (ImageRecord, RenditionRecord)](cls: type[R], data: Mapping[str, Any]) -> R:
    known = {f.name for f in fields(cls)} - {"extra"}
    values: dict[str, Any] = {}
    for name, stored in data.items():
        if name not in known or stored is None:
            continue
        if name in _NESTED and isinstance(stored, list | tuple):
            values[name] = tuple(_NESTED[name](v) for v in stored if isinstance(v, Mapping))
        else:
            values[name] = tuple(stored) if isinstance(stored, list) else stored
    extra = {k: v for k, v in data.items() if k not in known}
    return cls(**values, extra=extra)


# --- DynamoDB ---------------------------------------------------------------------------------


@cache
def _codec() -> tuple[Any, Any]:
    # boto3's (de)serializer, imported on first use: `import boto3` costs ~200 ms, which a
    # cold start that never touches the catalog (the notifier) should not pay.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_item(record: ImageRecord) -> dict[str, Any]:
    """The record as a DynamoDB attribute map."""
    serializer = _codec()[0]
    return {k: serializer.serialize(_plain(v)) for k, v in record.to_dict().items()}


def from_item(item: Mapping[str, Any]) -> ImageRecord:
    deserializer = _codec()[1]
    return ImageRecord.from_dict({k: _native(deserializer.deserialize(v)) for k, v in item.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_native(v) for v in value]
    return value
