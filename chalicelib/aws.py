"""boto3 clients, made lazily and cached for the life of the Lambda container.

boto3 itself is imported by the first client, not by `import app`: it costs ~200 ms
(botocore, s3transfer, urllib3), which a cold start should pay only when it talks to AWS.

The endpoint comes from AWS_ENDPOINT_URL (boto3 reads it itself), which is how the local
stack points every client at its emulator without any code here knowing.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

_LOCK = threading.Lock()  # boto3's default session must not create clients from two threads at once


@cache
def _config(signature_version: str | None = None) -> Any:
    from botocore.config import Config

    # Standard retry mode backs off on throttling and 5xx; a pool of 16 lets renditions
    # upload concurrently over kept-alive connections (one client, reused by every call).
    config = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=16, connect_timeout=5, read_timeout=30)
    return config.merge(Config(signature_version=signature_version)) if signature_version else config


@cache
def client(service: str, region: str) -> Any:
    import boto3

    with _LOCK:
        return boto3.session.Session().client(service, region_name=region, config=_config())


@cache
def s3_presigner(region: str) -> Any:
    """An S3 client used only to sign URLs and upload forms (no network calls).

    Presigned URLs and POST forms must be SigV4: botocore would otherwise sign them with the
    legacy SigV2 in us-east-1, which newer regions and buckets refuse."""
    import boto3

    with _LOCK:
        return boto3.session.Session().client("s3", region_name=region, config=_config("s3v4"))


def reset() -> None:
    """Forget cached clients (tests that switch emulators or credentials)."""
    client.cache_clear()
    s3_presigner.cache_clear()
