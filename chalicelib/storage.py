"""Object storage: the `ObjectStore` protocol, an S3 implementation and an in-memory one."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.models import SourceChanged, SourceObject

IMMUTABLE = "public, max-age=31536000, immutable"
# GetObject errors meaning "not the object HEAD saw any more": the ETag no longer matches
# (overwritten), or the key or version is gone (deleted).
_CHANGED = frozenset({"PreconditionFailed", "412", "NoSuchKey", "NoSuchVersion", "404"})


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str) -> SourceObject | None: ...
    def get(self, source: SourceObject) -> bytes:
        """The bytes of exactly `source` (its version, else its ETag); SourceChanged if gone."""
        ...

    def put(
        self, bucket: str, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str], cache_control: str = IMMUTABLE
    ) -> None: ...
    def delete(self, bucket: str, keys: Iterable[str]) -> None: ...
    def tag(self, bucket: str, key: str, tags: Mapping[str, str]) -> None: ...


class SourceLister(Protocol):
    """Listing, for reprocessing only (the event handlers never list)."""

    def list_keys(self, bucket: str, prefix: str, *, start_after: str | None, limit: int) -> tuple[list[str], bool]:
        """Up to `limit` keys under `prefix` after `start_after`, in key order, and whether more follow."""
        ...


class S3ObjectStore:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def head(self, bucket: str, key: str) -> SourceObject | None:
        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return SourceObject(
            bucket=bucket,
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=response.get("VersionId"),
            content_type=response.get("ContentType"),
            metadata={str(k).lower(): str(v) for k, v in (response.get("Metadata") or {}).items()},
        )

    def get(self, source: SourceObject) -> bytes:
        # Pin the read to what HEAD saw: an overwrite in between fails instead of mixing versions.
        extra: dict[str, str] = (
            {"VersionId": source.version_id} if source.version_id and source.version_id != "null" else {"IfMatch": f'"{source.etag}"'}
        )
        try:
            response = self._s3.get_object(Bucket=source.bucket, Key=source.key, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _CHANGED:
                raise SourceChanged(f"{source.key} was overwritten or deleted after HEAD") from exc
            raise
        return bytes(response["Body"].read())

    def put(
        self, bucket: str, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str], cache_control: str = IMMUTABLE
    ) -> None:
        self._s3.put_object(
            Bucket=bucket, Key=key, Body=data, ContentType=content_type, CacheControl=cache_control, Metadata=dict(metadata)
        )

    def delete(self, bucket: str, keys: Iterable[str]) -> None:
        batch = [{"Key": k} for k in keys]
        for start in range(0, len(batch), 1000):
            response = self._s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[start : start + 1000], "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RuntimeError(
                    f"could not delete {len(response['Errors'])} object(s), first {first.get('Key')}: {first.get('Message')}"
                )

    def list_keys(self, bucket: str, prefix: str, *, start_after: str | None, limit: int) -> tuple[list[str], bool]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(limit, 1000))}
        if start_after:
            kwargs["StartAfter"] = start_after
        response = self._s3.list_objects_v2(**kwargs)
        return [str(o["Key"]) for o in response.get("Contents", [])], bool(response.get("IsTruncated"))

    def tag(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        self._s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})


@dataclass
class StoredObject:
    data: bytes
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    cache_control: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    version: int = 1


class MemoryObjectStore:
    """In-memory store for unit tests (the use cases' and the API's)."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self._lock = threading.Lock()

    def add(
        self, bucket: str, key: str, data: bytes, content_type: str = "binary/octet-stream", metadata: Mapping[str, str] | None = None
    ) -> SourceObject:
        with self._lock:
            objects = self.buckets.setdefault(bucket, {})
            version = objects[key].version + 1 if key in objects else 1
            objects[key] = StoredObject(data, content_type, dict(metadata or {}), version=version)
        info = self.head(bucket, key)
        assert info is not None
        return info

    def head(self, bucket: str, key: str) -> SourceObject | None:
        obj = self.buckets.get(bucket, {}).get(key)
        if obj is None:
            return None
        return SourceObject(bucket, key, len(obj.data), _etag(obj.data), str(obj.version), obj.content_type, dict(obj.metadata))

    def get(self, source: SourceObject) -> bytes:
        # Pinned like S3ObjectStore.get: to the version HEAD saw, else to its ETag.
        obj = self.buckets.get(source.bucket, {}).get(source.key)
        pinned = source.version_id and source.version_id != "null"
        if obj is None or (str(obj.version) != source.version_id if pinned else _etag(obj.data) != source.etag):
            raise SourceChanged(f"{source.key} was overwritten or deleted after HEAD")
        return obj.data

    def put(
        self, bucket: str, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str], cache_control: str = IMMUTABLE
    ) -> None:
        with self._lock:
            objects = self.buckets.setdefault(bucket, {})
            version = objects[key].version + 1 if key in objects else 1  # an overwrite is a new version, as in S3
            objects[key] = StoredObject(data, content_type, dict(metadata), cache_control, version=version)

    def delete(self, bucket: str, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self.buckets.get(bucket, {}).pop(key, None)

    def tag(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        self.buckets[bucket][key].tags = dict(tags)

    def keys(self, bucket: str) -> list[str]:
        return sorted(self.buckets.get(bucket, {}))

    def remove(self, bucket: str, key: str) -> None:
        """A user deleting a source (tests of the ObjectRemoved handler)."""
        with self._lock:
            self.buckets.get(bucket, {}).pop(key, None)

    def list_keys(self, bucket: str, prefix: str, *, start_after: str | None, limit: int) -> tuple[list[str], bool]:
        # S3 lists in UTF-8 byte order, which for str is code point order: sorted() matches.
        keys = [k for k in sorted(self.buckets.get(bucket, {})) if k.startswith(prefix) and (start_after is None or k > start_after)]
        return keys[:limit], len(keys) > limit


def _etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag of a single-part upload, not security
