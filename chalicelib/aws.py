"""boto3 clients, made lazily and cached for the life of the Lambda container.

The endpoint comes from AWS_ENDPOINT_URL (boto3 reads it itself), which is how the local
stack points every client at its emulator without any code here knowing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling and 5xx; a pool of 16 lets renditions upload
# concurrently over kept-alive connections.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=16, connect_timeout=5, read_timeout=30)


# Presigned URLs and POST forms must be SigV4: botocore would otherwise sign them with the
# legacy SigV2 in us-east-1, which newer regions and buckets refuse.
_PRESIGN_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))


@cache
def client(service: str, region: str) -> Any:
    return boto3.session.Session().client(service, region_name=region, config=_CONFIG)


@cache
def s3_presigner(region: str) -> Any:
    """An S3 client used only to sign URLs and upload forms (no network calls)."""
    return boto3.session.Session().client("s3", region_name=region, config=_PRESIGN_CONFIG)


def reset() -> None:
    """Forget cached clients (tests that switch emulators or credentials)."""
    client.cache_clear()
    s3_presigner.cache_clear()
