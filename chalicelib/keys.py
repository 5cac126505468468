"""Key policy: a source key -> its image id, file stem and (versioned) output folder."""

from __future__ import annotations

import hashlib

from chalicelib.settings import Settings

MAX_KEY_BYTES = 1024
_BY_ID = "_by-id/"  # output folder for source keys that cannot be mirrored safely
_STEM_BYTES = 120
VERSION_CHARS = 16  # hex digits of a rendition version (64 bits: no two versions of a key collide)


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


def rendition_version(source_version: str | None, source_etag: str, profile_version: str) -> str:
    """A short hash of what the renditions are made from: the source's S3 version id (its ETag
    in an unversioned bucket) and the profile version. A re-upload or a preset change gives
    new URLs, so `Cache-Control: immutable` on them is true (see docs/output-keys.md)."""
    made_from = source_version if source_version and source_version != "null" else f"etag:{source_etag}"
    return hashlib.sha256(f"{made_from}\n{profile_version}".encode()).hexdigest()[:VERSION_CHARS]


def source_folder(settings: Settings, source_key: str) -> str:
    """The folder holding every version of a source's renditions: `<OUTPUT_PREFIX><source key
    minus UPLOAD_PREFIX>/`.

    Keys that are not clean relative paths (`..`, empty segments, control characters) or
    too long to fit go to `<OUTPUT_PREFIX>_by-id/<image_id>/` instead, so no output escapes
    its prefix, every key fits S3's 1,024 bytes, and two sources never share a folder.
    """
    relative = source_key[len(settings.upload_prefix) :] if source_key.startswith(settings.upload_prefix) else source_key
    folder = f"{settings.output_prefix}{relative}/"
    # Leave room for the version folder and the longest file name a preset can produce (stem + suffix).
    if _mirrorable(relative) and len(folder.encode("utf-8")) + VERSION_CHARS + 1 + _STEM_BYTES + 40 <= MAX_KEY_BYTES:
        return folder
    return f"{settings.output_prefix}{_BY_ID}{image_id_for(source_key)}/"


def output_folder(settings: Settings, source_key: str, version: str) -> str:
    """Where one version of a source's renditions goes: `<source folder><version>/`."""
    return f"{source_folder(settings, source_key)}{version}/"
