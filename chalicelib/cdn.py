"""The CDN in front of the processed bucket: the `Cdn` protocol (invalidate paths), a
CloudFront implementation and an in-memory one.

Rendition keys are versioned (docs/output-keys.md), so a re-upload never needs an
invalidation; a delete does: edge caches would otherwise keep serving the deleted image's
renditions for up to a year (`Cache-Control: immutable`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

MAX_PATHS = 3000  # CloudFront's limit of paths per invalidation in progress


class Cdn(Protocol):
    def invalidate(self, paths: Sequence[str]) -> str:
        """Ask the CDN to drop `paths` (`/renditions/...`, URL-encoded); the invalidation id."""
        ...


def paths_for(keys: Iterable[str]) -> list[str]:
    """The URL paths under which the CDN serves these keys (its origin is the processed
    bucket, see api.rendition_url), encoded as CloudFront matches them."""
    return sorted({"/" + quote(key, safe="/") for key in keys})


class CloudFrontCdn:
    def __init__(self, cloudfront: Any, distribution_id: str) -> None:
        self._cloudfront = cloudfront
        self.distribution_id = distribution_id

    def invalidate(self, paths: Sequence[str]) -> str:
        if len(paths) > MAX_PATHS:
            raise ValueError(f"{len(paths)} paths exceed CloudFront's {MAX_PATHS} per invalidation")
        response = self._cloudfront.create_invalidation(
            DistributionId=self.distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": list(paths)}, "CallerReference": uuid.uuid4().hex},
        )
        return str(response["Invalidation"]["Id"])


class MemoryCdn:
    """Records invalidations (tests)."""

    def __init__(self) -> None:
        self.invalidations: list[list[str]] = []

    def invalidate(self, paths: Sequence[str]) -> str:
        self.invalidations.append(list(paths))
        return f"I{len(self.invalidations)}"
