"""Presigned links: the `Links` protocol, an S3 implementation and a deterministic fake.

Signing happens locally (no network call): it only needs the credentials of the function,
whose role must itself be allowed the signed action (s3:PutObject on the upload prefix for
uploads, s3:GetObject on the renditions for downloads). With AWS_ENDPOINT_URL set the URLs
point at the local emulator, so a browser on the same machine can use them.
"""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any, Protocol
from urllib.parse import quote


class Links(Protocol):
    def upload_form(self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int) -> dict[str, Any]:
        """`{"url", "fields"}` for an HTML form / multipart POST of exactly one object."""
        ...

    def download_url(self, bucket: str, key: str, *, expires: int) -> str: ...


def upload_conditions(bucket: str, key: str, content_type: str, max_bytes: int) -> list[Any]:
    """What S3 enforces on the POST: this key only, this image type, 1..max_bytes bytes (the
    same limit the processor applies, so an oversized file is refused before it is stored)."""
    return [
        {"bucket": bucket},
        {"key": key},
        {"Content-Type": content_type},
        ["content-length-range", 1, max_bytes],
    ]


class S3Links:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def upload_form(self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int) -> dict[str, Any]:
        conditions = upload_conditions(bucket, key, content_type, max_bytes)[2:]  # boto3 adds bucket and key itself
        form = self._s3.generate_presigned_post(
            Bucket=bucket, Key=key, Fields={"Content-Type": content_type}, Conditions=conditions, ExpiresIn=expires
        )
        return {"url": form["url"], "fields": dict(form["fields"])}

    def download_url(self, bucket: str, key: str, *, expires: int) -> str:
        return str(self._s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires))


class FakeLinks:
    """Deterministic links for unit tests of the API layer (nothing is signed)."""

    def __init__(self, base: str = "https://s3.test") -> None:
        self.base = base

    def upload_form(self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires: int) -> dict[str, Any]:
        policy = {"expiration": f"+{expires}s", "conditions": upload_conditions(bucket, key, content_type, max_bytes)}
        fields = {"key": key, "Content-Type": content_type, "policy": b64encode(json.dumps(policy).encode()).decode()}
        return {"url": f"{self.base}/{bucket}", "fields": fields}

    def download_url(self, bucket: str, key: str, *, expires: int) -> str:
        return f"{self.base}/{bucket}/{quote(key)}?expires={expires}"
