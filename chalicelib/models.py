"""Value types shared by the pipeline: frozen dataclasses and the typed rejection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PROCESSED = "processed"
    REJECTED = "rejected"
    FAILED = "failed"
    DELETED = "deleted"


class ErrorCode(StrEnum):
    """Machine-readable reasons an input is rejected (stable: clients and alarms match on them)."""

    EMPTY_FILE = "empty_file"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT_IMAGE = "corrupt_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_MANY_FRAMES = "too_many_frames"
    INVALID_KEY = "invalid_key"
    DUPLICATE = "duplicate"  # a near-duplicate of an earlier image, with DUPLICATES=reject
    TOO_COMPLEX = "too_complex"  # too much decode work (pixels x scans) or not finished before the deadline


class SourceChanged(Exception):
    """The source is no longer the object HEAD saw: overwritten or deleted meanwhile. That
    change has its own S3 event, which will process (or remove) what is there now."""


class RejectedInput(Exception):
    """The upload is not an acceptable image. Final: retrying cannot change the outcome."""

    # Reasons can quote a decoder's error text, which can quote the file: keep what reaches
    # the catalog, the SNS event and the logs short.
    MAX_MESSAGE = 500

    def __init__(self, code: ErrorCode, message: str) -> None:
        if len(message) > self.MAX_MESSAGE:
            message = message[: self.MAX_MESSAGE - 1] + "…"
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SourceObject:
    """What S3 says about an uploaded object (from HEAD, not from the event)."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None
    content_type: str | None = None
    # User metadata (x-amz-meta-*, names lower case without the prefix): what an upload form
    # put there, e.g. `form-nonce` and `uploaded-by` (see chalicelib/forms.py).
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Upload:
    """One S3 ObjectCreated record, as the handler receives it."""

    bucket: str
    key: str  # already URL-decoded
    event_name: str = "ObjectCreated:Put"
    sequencer: str | None = None
    event_time: str | None = None


@dataclass(frozen=True)
class CameraSummary:
    make: str | None = None
    model: str | None = None
    taken_at: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("make", self.make), ("model", self.model), ("taken_at", self.taken_at)) if v}


@dataclass(frozen=True)
class SourceInfo:
    """Facts read from the decoded source, after EXIF orientation."""

    format: str
    width: int
    height: int
    mode: str
    frames: int = 1
    camera: CameraSummary = field(default_factory=CameraSummary)


@dataclass(frozen=True)
class Rendition:
    """One encoded output, ready to upload."""

    preset: str
    filename: str
    format: str
    content_type: str
    width: int
    height: int
    data: bytes = field(repr=False)
    frames: int = 1  # over 1: an animated rendition (animated WebP)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def animated(self) -> bool:
        return self.frames > 1
