"""Presigned links: the `Links` protocol, an S3 implementation and a deterministic fake.

Signing happens locally (no network call): it only needs the credentials of the function,
whose role must itself be allowed the signed action (s3:PutObject on the upload prefix for
uploads, s3:GetObject on the renditions for downloads). With AWS_ENDPOINT_URL set the URLs
point at the local emulator, so a browser on the same machine can use them.
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlsplit


class Links(Protocol):
    def upload_form(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """`{"url", "fields"}` for an HTML form / multipart POST of exactly one object; each
        `metadata` entry becomes an `x-amz-meta-<name>` field the policy pins to its value."""
        ...

    def download_url(self, bucket: str, key: str, *, expires: int) -> str: ...


def upload_conditions(bucket: str, key: str, content_type: str, max_bytes: int, metadata: Mapping[str, str] | None = None) -> list[Any]:
    """What S3 enforces on the POST: this key only, this image type, 1..max_bytes bytes (the
    same limit the processor applies, so an oversized file is refused before it is stored),
    and exactly the metadata the API chose (a client cannot drop or change the form's nonce)."""
    return [
        {"bucket": bucket},
        {"key": key},
        {"Content-Type": content_type},
        ["content-length-range", 1, max_bytes],
        *({name: value} for name, value in meta_fields(metadata).items()),
    ]


def meta_fields(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}


def bucket_origins(bucket: str, region: str, endpoint_url: str | None) -> tuple[str, ...]:
    """The origins a browser reaches `bucket` at through these links (for the gallery's CSP):
    the local emulator's, else S3's virtual-hosted names (global and regional), HTTPS only."""
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        return (f"{parts.scheme}://{parts.netloc}",)
    return (f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{region}.amazonaws.com")


class S3Links:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def upload_form(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        conditions = upload_conditions(bucket, key, content_type, max_bytes, metadata)[2:]  # boto3 adds bucket and key itself
        fields = {"Content-Type": content_type, **meta_fields(metadata)}
        form = self._s3.generate_presigned_post(Bucket=bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires)
        return {"url": form["url"], "fields": dict(form["fields"])}

    def download_url(self, bucket: str, key: str, *, expires: int) -> str:
        return str(self._s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires))


class FakeLinks:
    """Deterministic links for unit tests of the API layer (nothing is signed)."""

    def __init__(self, base: str = "https://s3.test") -> None:
        self.base = base

    def upload_form(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        policy = {"expiration": f"+{expires}s", "conditions": upload_conditions(bucket, key, content_type, max_bytes, metadata)}
        encoded = b64encode(json.dumps(policy).encode()).decode()
        fields = {"key": key, "Content-Type": content_type, **meta_fields(metadata), "policy": encoded}
        return {"url": f"{self.base}/{bucket}", "fields": fields}

    def download_url(self, bucket: str, key: str, *, expires: int) -> str:
        return f"{self.base}/{bucket}/{quote(key)}?expires={expires}"
