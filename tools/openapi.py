"""Generate openapi.json: Chalice's own Swagger 2.0 model of the routes (paths, methods,
summaries from the handlers' docstrings, the write routes' security) completed with the
parameters and response schemas of chalicelib/api.py.

    python -m tools.openapi > openapi.json      (or: make openapi)

A development tool: it is not packaged for Lambda (it needs the full `chalice` package).
The document describes the `prod` stage (write routes need an API key); tests check that
the checked-in file matches what this produces.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import patch

from chalice.deploy.swagger import TemplatedSwaggerGenerator

from chalicelib import api
from chalicelib.presets import FORMATS
from chalicelib.settings import DEFAULT_MAX_SOURCE_BYTES

ROOT = Path(__file__).resolve().parents[1]
DOC_STAGE = "prod"


def load_app(stage: str = DOC_STAGE, **overrides: str) -> ModuleType:
    """A fresh import of app.py with a stage's environment (Chalice reads its decorators'
    arguments at import time), under its own module name so the test's `app` is untouched."""
    env = {**stage_environment(stage), **overrides}
    env.pop("AWS_ENDPOINT_URL", None)
    name = f"_app_{stage}_{abs(hash(tuple(sorted(env.items()))))}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with patch.dict(os.environ, {**env, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}):
        spec.loader.exec_module(module)
    return module


def stage_environment(stage: str) -> dict[str, str]:
    """A stage's `environment_variables` in .chalice/config.json."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {k: str(v) for k, v in config["stages"][stage]["environment_variables"].items()}


# --- schemas -----------------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the parameter or body field at fault (400/413)"},
            },
        }
    },
}
_RENDITION = {
    "type": "object",
    "required": ["preset", "key", "format", "width", "height", "bytes"],
    "properties": {
        "preset": {"type": "string"},
        "key": {"type": "string"},
        "format": {"type": "string", "enum": list(FORMATS)},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "bytes": {"type": "integer"},
        "animated": {"type": "boolean", "description": "present (true) only on an animated rendition (animated WebP)"},
        "frames": {"type": "integer", "description": "frame count of an animated rendition"},
        "url": {"type": "string", "description": "CDN URL, or a presigned GET valid for PRESIGN_EXPIRY_SECONDS"},
    },
}
_RECORD_PROPERTIES = {
    "image_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "status": {"type": "string", "enum": list(api.LISTABLE_STATUSES)},
    "source_key": {"type": "string"},
    "bytes": {"type": "integer"},
    "format": {"type": "string"},
    "width": {"type": "integer"},
    "height": {"type": "integer"},
    "renditions": {"type": "array", "items": {"$ref": "#/definitions/Rendition"}},
    "error_code": {"type": "string"},
    "error": {"type": "string"},
    "updated_at": {"type": "string"},
    "placeholder": {
        "type": "object",
        "description": "shown while the image loads (docs: image facts)",
        "properties": {
            "blurhash": {"type": "string", "description": "BlurHash, 4x3 components (3x4 for a portrait image)"},
            "dominant_color": {"type": "string", "pattern": "^#[0-9a-f]{6}$", "description": "the largest colour cluster"},
            "lqip": {"type": "string", "description": "data:image/webp;base64,... of a blurred preview, at most 1 KB"},
        },
    },
    "phash": {"type": "string", "pattern": "^[0-9a-f]{16}$", "description": "64-bit DCT perceptual hash"},
    "duplicate_of": {
        "type": "string",
        "pattern": "^[0-9a-f]{32}$",
        "description": "the earliest image within DUPLICATE_MAX_DISTANCE bits of phash; absent when none",
    },
}
_IMAGE = {
    "type": "object",
    "description": "The catalog record (README: Catalog records) with a URL per rendition, a srcset per format and a <picture>.",
    "required": ["image_id", "status", "renditions", "srcset", "picture"],
    "properties": {
        **_RECORD_PROPERTIES,
        "srcset": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "format -> 'url 320w, url 1024w, ...', in the order avif, webp, jpeg (webp_animated first for an animation)",
        },
        "picture": {
            "type": "string",
            "x-nullable": True,
            "description": "a ready-to-paste <picture>: AVIF, WebP sources and a JPEG <img> with sizes, width and height",
        },
    },
}
_SUMMARY = {
    "type": "object",
    "required": ["image_id", "status", "thumbnail_url"],
    "properties": {**_RECORD_PROPERTIES, "thumbnail_url": {"type": "string", "x-nullable": True}},
}
_LIST = {
    "type": "object",
    "required": ["items", "next"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/definitions/ImageSummary"}},
        "next": {"type": "string", "x-nullable": True, "description": "pass as ?next= for the following page; null on the last page"},
    },
}
_SIMILAR = {
    "type": "object",
    "required": ["image_id", "max_distance", "items"],
    "properties": {
        "image_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "phash": {"type": "string", "x-nullable": True},
        "max_distance": {"type": "integer", "description": "DUPLICATE_MAX_DISTANCE in force"},
        "items": {
            "type": "array",
            "maxItems": 20,
            "description": "nearest first, then earliest",
            "items": {
                "allOf": [
                    {"$ref": "#/definitions/ImageSummary"},
                    {"type": "object", "required": ["distance"], "properties": {"distance": {"type": "integer", "minimum": 0}}},
                ]
            },
        },
    },
}
_UPLOAD_REQUEST = {
    "type": "object",
    "required": ["filename", "content_type"],
    "properties": {
        "filename": {"type": "string", "minLength": 1, "maxLength": api.MAX_FILENAME_CHARS},
        "content_type": {"type": "string", "enum": list(api.UPLOAD_TYPES)},
        "size": {
            "type": "integer",
            "minimum": 1,
            "maximum": DEFAULT_MAX_SOURCE_BYTES,
            "description": "optional, the file's bytes; over MAX_SOURCE_BYTES (default shown) is a 413",
        },
    },
}
_UPLOAD = {
    "type": "object",
    "required": ["image_id", "key", "upload", "expires_in", "max_bytes"],
    "properties": {
        "image_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "key": {"type": "string"},
        "upload": {
            "type": "object",
            "required": ["url", "fields"],
            "properties": {"url": {"type": "string"}, "fields": {"type": "object", "additionalProperties": {"type": "string"}}},
            "description": "POST multipart/form-data to url: every field, then the file as the last field `file`",
        },
        "expires_in": {"type": "integer"},
        "max_bytes": {"type": "integer"},
        "status_url": {"type": "string"},
    },
}
_DELETED = {
    "type": "object",
    "required": ["image_id", "deleted"],
    "properties": {
        "image_id": {"type": "string"},
        "deleted": {
            "type": "object",
            "required": ["record", "renditions", "source", "cdn_invalidated"],
            "properties": {
                "record": {"type": "boolean"},
                "renditions": {"type": "integer"},
                "source": {"type": "boolean"},
                "cdn_invalidated": {"type": "boolean"},
            },
        },
    },
}
_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}},
    "additionalProperties": False,
}
_HEALTH = {
    "type": "object",
    "required": ["status", "settings", "profile", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "settings": {"type": "object"},
        "profile": {"type": "object"},
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["ok"],
                "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
            },
        },
    },
}
DEFINITIONS = {
    "Error": _ERROR,
    "Rendition": _RENDITION,
    "Image": _IMAGE,
    "ImageSummary": _SUMMARY,
    "ImageList": _LIST,
    "Similar": _SIMILAR,
    "UploadRequest": _UPLOAD_REQUEST,
    "Upload": _UPLOAD,
    "Deleted": _DELETED,
    "Status": _STATUS,
    "Health": _HEALTH,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "invalid parameter or body (error.field names it)", 404: "no such image", 405: "method not allowed"}
    text |= {401: "not signed in (WRITE_AUTH=cognito)", 403: "not the uploader nor an admin (WRITE_AUTH=cognito)"}
    text |= {409: "the image changed meanwhile", 413: "too large", 415: "the request body is not JSON", 500: "internal error"}
    return {str(s): {"description": text[s], "schema": _ref("Error")} for s in statuses}


_ID = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "type": "string",
    "pattern": "^[0-9a-f]{32}$",
    "description": "32 lowercase hex digits",
}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/", "get"): {
        "produces": ["text/html"],
        "responses": {"200": {"description": "the gallery page (HTML)"}},
    },
    ("/images", "get"): {
        "parameters": [
            {"name": "limit", "in": "query", "type": "integer", "minimum": 1, "maximum": api.MAX_LIMIT, "default": api.DEFAULT_LIMIT},
            {
                "name": "next",
                "in": "query",
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{1,512}$",
                "description": "the opaque `next` token of the previous page (any other value is a 400)",
            },
            {
                "name": "status",
                "in": "query",
                "type": "string",
                "enum": list(api.LISTABLE_STATUSES),
                "description": "only this status; without it every image except `deleted` tombstones",
            },
        ],
        "responses": {"200": {"description": "one page, newest first", "schema": _ref("ImageList")}, **_errors(400, 500)},
    },
    ("/images/{image_id}", "get"): {
        "parameters": [_ID],
        "responses": {"200": {"description": "the image", "schema": _ref("Image")}, **_errors(400, 404, 500)},
    },
    ("/images/{image_id}/similar", "get"): {
        "parameters": [_ID],
        "responses": {"200": {"description": "its near-duplicates", "schema": _ref("Similar")}, **_errors(400, 404, 500)},
    },
    ("/images/{image_id}", "delete"): {
        "parameters": [
            _ID,
            {"name": "keep_source", "in": "query", "type": "boolean", "description": "keep the uploaded source (deleted by default)"},
            {"name": "source", "in": "query", "type": "boolean", "description": "deprecated, accepted and ignored"},
        ],
        "responses": {"200": {"description": "deleted", "schema": _ref("Deleted")}, **_errors(400, 401, 403, 404, 409, 500)},
    },
    ("/uploads", "post"): {
        "parameters": [{"name": "body", "in": "body", "required": True, "schema": _ref("UploadRequest")}],
        "responses": {"201": {"description": "a presigned POST for one upload", "schema": _ref("Upload")}, **_errors(400, 413, 415, 500)},
    },
    ("/health", "get"): {
        "responses": {
            "200": {"description": "all reachable", "schema": _ref("Status")},
            "503": {"description": "something is unreachable", "schema": _ref("Status")},
        },
    },
    ("/health/details", "get"): {
        "responses": {
            "200": {"description": "all reachable: the settings, the profile and each check", "schema": _ref("Health")},
            "503": {"description": "something is unreachable (the failing checks say what)", "schema": _ref("Health")},
        },
    },
}


def document(chalice_app: Any) -> dict[str, Any]:
    model = TemplatedSwaggerGenerator().generate_swagger(chalice_app)
    # Deployment wiring (Lambda integration URIs, binary types) is not part of the contract.
    model = {k: v for k, v in model.items() if not k.startswith("x-amazon-apigateway")}
    model["info"] = {"title": "image-pipeline", "version": "1.0", "description": "Read and upload API of image-pipeline (see README)."}
    model["definitions"] = {**DEFINITIONS}
    for path, methods in model["paths"].items():
        for method, operation in methods.items():
            operation.pop("x-amazon-apigateway-integration", None)
            extra = OPERATIONS.get((path, method))
            if extra is None:
                raise KeyError(f"{method.upper()} {path} has no entry in tools/openapi.py OPERATIONS: document it")
            operation.update(extra)
            operation["operationId"] = f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'gallery'}"
    return model


def render(chalice_app: Any) -> str:
    return json.dumps(document(chalice_app), indent=2, sort_keys=True) + "\n"


def main() -> None:
    sys.stdout.write(render(load_app(DOC_STAGE).app))


if __name__ == "__main__":
    main()
