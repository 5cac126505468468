"""The REST API's use cases: validate a request, call the catalog/store/links adapters, and
shape the JSON answer. No Chalice and no boto3 here: app.py passes the request's parts in
and turns a `Reply` into a response.

Every error a client can cause is an `ApiError` with a stable `code`, the HTTP status, and
for 400s the `field` at fault; anything unexpected becomes a 500 `internal_error` with no
traceback (unless API_DEBUG is on, which the settings allow only against the local emulator).
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import traceback
import unicodedata
import uuid
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from chalicelib import deletion, duplicates, forms
from chalicelib.adapters import stamp, utc_now
from chalicelib.catalog import Catalog, index_for
from chalicelib.cdn import Cdn
from chalicelib.identity import Caller, delete_refusal
from chalicelib.keys import image_id_for
from chalicelib.links import Links
from chalicelib.models import Status
from chalicelib.picture import picture, srcsets
from chalicelib.presets import Profile
from chalicelib.probe import Probe
from chalicelib.records import ImageRecord
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore

log = logging.getLogger("image_pipeline.api")

DEFAULT_LIMIT = 24
MAX_LIMIT = 100
MAX_BODY_BYTES = 16 * 1024
MAX_FILENAME_CHARS = 255
_SAFE_NAME_CHARS = 100
_IMAGE_ID = re.compile(r"[0-9a-f]{32}")  # used with fullmatch: `$` would accept a trailing newline
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,512}")  # urlsafe base64 without padding
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})?", re.ASCII)
LISTABLE_STATUSES = (Status.PROCESSED.value, Status.REJECTED.value, Status.FAILED.value, Status.DELETED.value)
# Tombstones of sources their owner deleted (see removal.remove_source) are listed only on request.
HIDDEN_BY_DEFAULT = (Status.DELETED.value,)
# What the processor can decode (it identifies files by content; this only gates the form).
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp", "image/avif", "image/heic", "image/heif")
_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-ms-bmp": "image/bmp", "image/x-png": "image/png"}
_TRUE, _FALSE = ("true", "1"), ("false", "0")
JSON_HARDENING = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Api:
    """What the routes need, wired once per container by app.py (or a test)."""

    settings: Settings
    profile: Profile
    catalog: Catalog
    store: ObjectStore
    links: Links
    probe: Probe
    clock: Callable[[], datetime] = utc_now
    new_id: Callable[[], str] = _new_id
    cdn: Cdn | None = None  # invalidated on DELETE when CDN_DISTRIBUTION_ID is set


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


def bad_request(field: str, message: str, code: str = "invalid_parameter") -> ApiError:
    return ApiError(400, code, message, field)


# --- running a route ---------------------------------------------------------------------


def run(call: Callable[[], Reply], *, debug: bool = False, where: str = "") -> Reply:
    """Run a route body: ApiErrors become their JSON error, anything else a logged 500."""
    try:
        return call()
    except ApiError as error:
        return Reply(error.status, error.body())
    except Exception:
        log.exception("unhandled error in %s", where or "a route")
        body: dict[str, Any] = {"error": {"code": "internal_error", "message": "An internal error occurred; it has been logged."}}
        if debug:
            body["error"]["traceback"] = traceback.format_exc()
        return Reply(500, body)


# Chalice answers some requests itself (unsupported media type, wrong method, its own 500).
_CHALICE_CODES = {
    "BadRequestError": "bad_request",
    "UnsupportedMediaType": "unsupported_media_type",
    "MethodNotAllowedError": "method_not_allowed",
    "NotFoundError": "not_found",
    "InternalServerError": "internal_error",
}


def uniform_error(status: int, body: Any) -> dict[str, Any] | None:
    """Chalice's `{"Code", "Message"}` error bodies rewritten to this API's shape (None: leave as is)."""
    if status < 400 or not isinstance(body, Mapping) or set(body) != {"Code", "Message"}:
        return None
    code = _CHALICE_CODES.get(str(body["Code"])) or re.sub(r"(?<!^)(?=[A-Z])", "_", str(body["Code"])).lower()
    return {"error": {"code": code, "message": str(body["Message"])}}


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, body)


# --- GET /images -------------------------------------------------------------------------


def list_images(api: Api, query: Mapping[str, str] | None) -> Reply:
    query = query or {}
    limit = parse_limit(query.get("limit"))
    status = parse_status(query.get("status"))
    after = decode_cursor(query.get("next"), status)
    page = api.catalog.list_images(status=status, limit=limit, after=after, exclude=() if status else HIDDEN_BY_DEFAULT)
    items = [summary_view(api, record) for record in page.items]
    return json_reply({"items": items, "next": encode_cursor(page.last, status) if page.last else None})


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # isascii: str.isdigit() also accepts "²", which int() refuses
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_status(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in LISTABLE_STATUSES:
        raise bad_request("status", f"status must be one of {', '.join(LISTABLE_STATUSES)}")
    return raw


def encode_cursor(last: Mapping[str, str], status: str | None) -> str:
    """An opaque token: the index key to resume after, plus the filter it belongs to."""
    payload = {"i": last["image_id"], "u": last["updated_at"], "s": status}
    return urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str | None, status: str | None) -> dict[str, str] | None:
    """Validate a `next` token completely before it reaches DynamoDB (a forged or truncated
    token is a 400 naming `next`, never a 500)."""
    if token is None:
        return None
    invalid = bad_request("next", "next is not a valid page token (use the `next` value of a previous answer)")
    if not _TOKEN.fullmatch(token):
        raise invalid
    try:
        payload = json.loads(urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict) or set(payload) != {"i", "u", "s"}:
        raise invalid
    image_id, updated_at, cursor_status = payload["i"], payload["u"], payload["s"]
    if not (
        isinstance(image_id, str) and _IMAGE_ID.fullmatch(image_id) and isinstance(updated_at, str) and _TIMESTAMP.fullmatch(updated_at)
    ):
        raise invalid
    if cursor_status != status:
        raise bad_request("next", "this page token belongs to a listing with a different status filter")
    _, attribute, value = index_for(status)
    return {"image_id": image_id, attribute: value, "updated_at": updated_at}


# --- GET /images/{image_id} --------------------------------------------------------------


def get_image(api: Api, image_id: str) -> Reply:
    record = _existing(api, image_id)
    if record.status == Status.DELETED.value:  # a tombstone: listed on request (?status=deleted) only
        raise ApiError(404, "not_found", f"image {image_id} was deleted")
    return json_reply(detail_view(api, record))


def _existing(api: Api, image_id: str) -> ImageRecord:
    if not _IMAGE_ID.fullmatch(image_id):
        raise bad_request("image_id", "image_id is 32 lowercase hexadecimal characters (see POST /uploads)")
    record = api.catalog.get(image_id)
    if record is None:
        raise ApiError(404, "not_found", f"no image {image_id} (not uploaded, not processed yet, or deleted)")
    return record


def rendition_url(api: Api, key: str) -> str:
    """CloudFront when CDN_DOMAIN is set (the distribution's origin is the processed bucket),
    otherwise a presigned GET that expires after PRESIGN_EXPIRY_SECONDS."""
    if api.settings.cdn_domain:
        return f"https://{api.settings.cdn_domain}/{quote(key, safe='/')}"
    return api.links.download_url(api.settings.processed_bucket, key, expires=api.settings.presign_expiry)


def detail_view(api: Api, record: ImageRecord) -> dict[str, Any]:
    view = record.public_view()
    renditions = [{**r, "url": rendition_url(api, r["key"])} for r in view.get("renditions") or []]
    srcset = srcsets(api.profile, renditions)
    return {**view, "renditions": renditions, "srcset": srcset, "picture": picture(renditions, srcset)}


def summary_view(api: Api, record: ImageRecord) -> dict[str, Any]:
    """A listing item: the record plus a `thumbnail_url` (the smallest rendition's URL)."""
    view = record.public_view()
    renditions = view.get("renditions") or []
    thumb = next((r for r in renditions if r.get("preset") == "thumbnail"), None)
    if thumb is None and renditions:
        thumb = min(renditions, key=lambda r: (r.get("width") or 0) * (r.get("height") or 0))
    return {**view, "thumbnail_url": rendition_url(api, thumb["key"]) if thumb else None}


# --- POST /uploads -----------------------------------------------------------------------


def create_upload(api: Api, raw_body: bytes | str | None, caller: Caller | None = None) -> Reply:
    request = _json_object(raw_body)
    filename = request.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise bad_request("filename", "filename is required: the name of the file being uploaded", "missing_field")
    if len(filename) > MAX_FILENAME_CHARS:
        raise bad_request("filename", f"filename is longer than {MAX_FILENAME_CHARS} characters")
    content_type = _upload_type(request.get("content_type"))
    if "size" in request:
        size = request["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad_request("size", "size is the file's length in bytes (a non-negative integer)")
        if size == 0:
            raise bad_request("size", "the file is empty", "empty_file")
        if size > api.settings.max_source_bytes:
            raise ApiError(413, "too_large", f"{size:,} bytes exceeds the upload limit of {api.settings.max_source_bytes:,} bytes", "size")
    key = upload_key(api.settings.upload_prefix, filename, api.clock(), api.new_id())
    form = api.links.upload_form(
        api.settings.upload_bucket,
        key,
        content_type=content_type,
        max_bytes=api.settings.max_source_bytes,
        expires=api.settings.presign_expiry,
        metadata=forms.metadata(api.catalog, api.clock(), api.settings.presign_expiry, caller),
    )
    image_id = image_id_for(key)
    body = {
        "image_id": image_id,
        "key": key,
        "upload": form,
        "expires_in": api.settings.presign_expiry,
        "max_bytes": api.settings.max_source_bytes,
        "status_url": f"images/{image_id}",
    }
    return Reply(201, body)


def _json_object(raw: bytes | str | None) -> dict[str, Any]:
    if not raw:
        raise bad_request("body", 'a JSON body is required: {"filename": ..., "content_type": ...}', "missing_body")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes", "body")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("body", "the body is not valid JSON", "invalid_json") from None
    if not isinstance(value, dict):
        raise bad_request("body", "the body must be a JSON object", "invalid_json")
    return value


def _upload_type(raw: object) -> str:
    if raw is None or raw == "":
        raise bad_request("content_type", f"content_type is required, one of {', '.join(UPLOAD_TYPES)}", "missing_field")
    if not isinstance(raw, str):
        raise bad_request("content_type", "content_type must be a string")
    lowered = raw.split(";", 1)[0].strip().lower()
    content_type = _TYPE_ALIASES.get(lowered, lowered)
    if content_type not in UPLOAD_TYPES:
        raise bad_request(
            "content_type", f"{raw[:80]!r} is not an image type the pipeline processes ({', '.join(UPLOAD_TYPES)})", "unsupported_type"
        )
    return content_type


def safe_filename(filename: str) -> str:
    """The last path segment, NFC, letters/digits/`._-` only, no leading dot, at most 100 characters
    (the extension is kept)."""
    name = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = re.sub(r"[^\w.-]+", "-", name)
    stem, dot, ext = name.rpartition(".")
    if dot and ext.strip("-_") and not stem.strip(".-_"):  # "★.jpg": keep the extension, not just "jpg"
        name = f"image.{ext.strip('-_')}"
    name = re.sub(r"-{2,}", "-", name).strip(".-_")
    if len(name) > _SAFE_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:10] if dot and stem else ""
        name = name[: _SAFE_NAME_CHARS - len(ext) - 1].rstrip(".-") + (f".{ext}" if ext else "")
    return name or "image"


def upload_key(prefix: str, filename: str, when: datetime, unique: str) -> str:
    """`<UPLOAD_PREFIX><YYYY-MM-DD>/<32 hex>-<safe file name>`: the date groups uploads for
    lifecycle rules and browsing, the random part means two uploads of `IMG_0001.jpg` never
    overwrite each other, and the name stays readable in the renditions' folder."""
    return f"{prefix}{when.astimezone(UTC):%Y-%m-%d}/{unique}-{safe_filename(filename)}"


# --- DELETE /images/{image_id} -----------------------------------------------------------


def delete_image(api: Api, image_id: str, query: Mapping[str, str] | None, caller: Caller | None = None) -> Reply:
    """The image becomes a tombstone; its renditions, its source (unless ?keep_source=true)
    and its CDN copies go (chalicelib/deletion.py). `?source=` is the old opt-in, now a no-op."""
    keep_source = _flag((query or {}).get("keep_source"), "keep_source")
    _flag((query or {}).get("source"), "source")  # still validated: old clients keep working
    record = _existing(api, image_id)
    refusal = delete_refusal(api.settings, record.uploaded_by, caller)
    if refusal is not None:
        raise ApiError(*refusal)
    deleter = deletion.Deleter(api.settings, api.catalog, api.store, api.cdn, lambda: stamp(api.clock()))
    try:
        done = deletion.delete_image(deleter, record, keep_source=keep_source)
    except deletion.Conflict:
        raise ApiError(409, "conflict", "the image was reprocessed while it was being deleted; fetch it again and retry") from None
    duplicates.forget(api.catalog, record, api.settings.duplicate_max_distance)
    return json_reply({"image_id": image_id, "deleted": done.view()})


def _flag(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(name, f"{name} must be true or false")
