"""Key policy: a source key -> its image id, file stem and output folder."""

from __future__ import annotations

import hashlib

from chalicelib.settings import Settings

MAX_KEY_BYTES = 1024
_BY_ID = "_by-id/"  # output folder for source keys that cannot be mirrored safely
_STEM_BYTES = 120


def image_id_for(source_key: str) -> str:
    """Deterministic id of a source key (clients can compute it too)."""
    return hashlib.sha256(source_key.encode("utf-8")).hexdigest()[:32]


def truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def source_stem(source_key: str) -> str:
    name = source_key.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return truncate_utf8(stem or "image", _STEM_BYTES)


def _mirrorable(relative: str) -> bool:
    if not relative or relative.startswith(_BY_ID) or "\\" in relative:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in relative):
        return False
    return all(part not in ("", ".", "..") for part in relative.split("/"))


def output_folder(settings: Settings, source_key: str) -> str:
    """Where a source's renditions go: `<OUTPUT_PREFIX><source key minus UPLOAD_PREFIX>/`.

    Keys that are not clean relative paths (`..`, empty segments, control characters) or
    too long to fit go to `<OUTPUT_PREFIX>_by-id/<image_id>/` instead, so no output escapes
    its prefix, every key fits S3's 1,024 bytes, and two sources never share a folder.
    """
    relative = source_key[len(settings.upload_prefix) :] if source_key.startswith(settings.upload_prefix) else source_key
    folder = f"{settings.output_prefix}{relative}/"
    # Leave room for the longest file name a preset can produce (stem + suffix).
    if _mirrorable(relative) and len(folder.encode("utf-8")) + _STEM_BYTES + 40 <= MAX_KEY_BYTES:
        return folder
    return f"{settings.output_prefix}{_BY_ID}{image_id_for(source_key)}/"
