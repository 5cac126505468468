"""The image catalog: `Catalog` protocol, DynamoDB implementation and an in-memory one.

Writes are conditional on the S3 event `sequencer`, so a late or duplicate event for a key
that has since been overwritten can never clobber the newer result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.duplicates import PREFIX, BandIndex, DynamoBandIndex, MemoryBandIndex
from chalicelib.records import ImageRecord, from_item, to_item

_CONDITION = "attribute_not_exists(image_id) OR attribute_not_exists(sequencer) OR sequencer <= :sequencer"
LISTING = "images"  # the constant partition of GSI `by_updated` (every record carries it)
NONCE_PREFIX = "form#"  # catalog keys of upload-form nonces (chalicelib/forms.py)
_MAX_QUERY_ROUNDS = 10  # a page needs more than one Query only when DynamoDB hits its 1 MB cap


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first. `last` is the index key of the last item when
    more items follow (pass it back as `after`), else None."""

    items: list[ImageRecord]
    last: dict[str, str] | None


def index_for(status: str | None) -> tuple[str, str, str]:
    """(index name, partition attribute, partition value) serving a listing."""
    return ("by_status", "status", status) if status else ("by_updated", "listing", LISTING)


def index_key(record: ImageRecord, status: str | None) -> dict[str, str]:
    """The key DynamoDB needs to resume a Query on the listing's index after `record`."""
    _, attribute, value = index_for(status)
    return {"image_id": record.image_id, attribute: value, "updated_at": str(record.updated_at)}


def sequencer_order(sequencer: str | None) -> str | None:
    """S3 sequencers compare as hex numbers: left-pad so string order equals numeric order."""
    if not sequencer:
        return None
    return sequencer.upper().rjust(32, "0")


class Catalog(Protocol):
    def get(self, image_id: str) -> ImageRecord | None: ...
    def put(self, record: ImageRecord) -> bool:
        """Store `record`; False (and nothing written) if a newer event already wrote it."""
        ...

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        """Delete only if the record is still the one written at `updated_at`; False if it changed."""
        ...

    def replace_version(self, record: ImageRecord, updated_at: str) -> bool:
        """Store `record` only if the stored one is still the one written at `updated_at`
        (whatever the sequencers say); False, and nothing written, if it changed."""
        ...

    def list_images(self, *, status: str | None, limit: int, after: Mapping[str, str] | None = None, exclude: tuple[str, ...] = ()) -> Page:
        """Newest first (by `updated_at`), optionally only one status or without some statuses;
        `after` is a previous Page.last."""
        ...

    def get_many(self, image_ids: Sequence[str]) -> list[ImageRecord]:
        """The records of up to 100 images that exist, in one read (any order)."""
        ...

    # The near-duplicate index's band items live in the same table (chalicelib/duplicates.py).
    def band_members(self, keys: Sequence[str]) -> set[str]: ...
    def add_to_bands(self, keys: Sequence[str], member: str) -> None: ...
    def remove_from_bands(self, keys: Sequence[str], member: str) -> None: ...

    def issue_nonce(self, nonce: str, expires_at: int) -> None:
        """Remember an upload form's nonce until `expires_at` (epoch seconds, the TTL attribute)."""
        ...

    def claim_nonce(self, nonce: str, claim: str) -> bool | None:
        """Mark the nonce used by `claim` (one object version): True if it was unused or is
        already `claim`'s, False if another version used it (a replayed form), None if it
        was never issued (or has expired and gone)."""
        ...


class DynamoNonces:
    """Form nonces as items of the catalog table, under a reserved key prefix (`form#`; image
    ids are hex). They carry neither `listing` nor `status`, so no listing index sees them."""

    _db: Any
    table: str

    def issue_nonce(self, nonce: str, expires_at: int) -> None:
        self._db.put_item(
            TableName=self.table,
            Item={"image_id": {"S": nonce_key(nonce)}, "expires_at": {"N": str(expires_at)}},
            ConditionExpression="attribute_not_exists(image_id)",
        )

    def claim_nonce(self, nonce: str, claim: str) -> bool | None:
        key = {"image_id": {"S": nonce_key(nonce)}}
        try:
            self._db.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET claimed_by = :c",
                ConditionExpression="attribute_exists(image_id) AND (attribute_not_exists(claimed_by) OR claimed_by = :c)",
                ExpressionAttributeValues={":c": {"S": claim}},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            found = self._db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            return None if found is None else False
        return True


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _written(write: Callable[[], object]) -> bool:
    """A conditional write: True when made, False when its condition failed (other errors raise)."""
    try:
        write()
    except ClientError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def nonce_key(nonce: str) -> str:
    return f"{NONCE_PREFIX}{nonce}"


class _Bands:
    """The near-duplicate index's band items, kept beside the records (chalicelib/duplicates.py)."""

    _bands: BandIndex

    def band_members(self, keys: Sequence[str]) -> set[str]:
        return self._bands.band_members(keys)

    def add_to_bands(self, keys: Sequence[str], member: str) -> None:
        self._bands.add_to_bands(keys, member)

    def remove_from_bands(self, keys: Sequence[str], member: str) -> None:
        self._bands.remove_from_bands(keys, member)


class DynamoCatalog(DynamoNonces, _Bands):
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table
        self._bands = self._dynamo_bands = DynamoBandIndex(dynamodb, table)

    def get_many(self, image_ids: Sequence[str]) -> list[ImageRecord]:
        keys = [{"image_id": {"S": i}} for i in dict.fromkeys(image_ids)][:100]
        if not keys:
            return []
        items = self._dynamo_bands.batch_get(keys)
        return [from_item(item) for item in items if not item["image_id"]["S"].startswith(PREFIX)]  # band items are not images

    def get(self, image_id: str) -> ImageRecord | None:
        response = self._db.get_item(TableName=self.table, Key={"image_id": {"S": image_id}}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def put(self, record: ImageRecord) -> bool:
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": to_item(record)}
        if record.sequencer:
            kwargs["ConditionExpression"] = _CONDITION
            kwargs["ExpressionAttributeValues"] = {":sequencer": {"S": record.sequencer}}
        return _written(lambda: self._db.put_item(**kwargs))

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        return _written(
            lambda: self._db.delete_item(
                TableName=self.table,
                Key={"image_id": {"S": image_id}},
                ConditionExpression="updated_at = :updated_at",
                ExpressionAttributeValues={":updated_at": {"S": updated_at}},
            )
        )

    def replace_version(self, record: ImageRecord, updated_at: str) -> bool:
        return _written(
            lambda: self._db.put_item(
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression="updated_at = :updated_at",
                ExpressionAttributeValues={":updated_at": {"S": updated_at}},
            )
        )

    def list_images(self, *, status: str | None, limit: int, after: Mapping[str, str] | None = None, exclude: tuple[str, ...] = ()) -> Page:
        # A Query on a GSI, never a Scan. One extra item is read so the last page says so
        # (next = null) instead of handing out a cursor that leads to an empty page. Excluded
        # statuses are filtered server-side, which can shorten a round: hence the loop.
        index, attribute, value = index_for(status)
        items: list[ImageRecord] = []
        start = {k: {"S": v} for k, v in after.items()} if after else None
        for _ in range(_MAX_QUERY_ROUNDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": index,
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": {"#p": attribute},
                "ExpressionAttributeValues": {":p": {"S": value}},
                "ScanIndexForward": False,
                "Limit": limit + 1 - len(items),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            if exclude:
                kwargs["FilterExpression"] = " AND ".join(f"#s <> :x{n}" for n in range(len(exclude)))
                kwargs["ExpressionAttributeNames"]["#s"] = "status"
                kwargs["ExpressionAttributeValues"].update({f":x{n}": {"S": x} for n, x in enumerate(exclude)})
            response = self._db.query(**kwargs)
            items.extend(from_item(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if len(items) > limit or not start:
                break
        if len(items) > limit:
            return Page(items[:limit], index_key(items[limit - 1], status))
        if start:  # the round cap was hit with more to read: resume after the last item seen
            return Page(items, index_key(items[-1], status) if items else {k: v["S"] for k, v in start.items()})
        return Page(items, None)


class MemoryCatalog(_Bands):
    """`items` holds each record's stored form (ImageRecord.to_dict), as DynamoDB would return it."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.nonces: dict[str, str | None] = {}  # nonce -> the claim that used it
        self._lock = threading.Lock()
        self._bands = self.bands = MemoryBandIndex()  # the band items, apart from the records as in DynamoDB

    def get_many(self, image_ids: Sequence[str]) -> list[ImageRecord]:
        return [record for i in dict.fromkeys(image_ids) if (record := self.get(i)) is not None][:100]

    def issue_nonce(self, nonce: str, expires_at: int) -> None:
        with self._lock:
            self.nonces.setdefault(nonce, None)

    def claim_nonce(self, nonce: str, claim: str) -> bool | None:
        with self._lock:
            if nonce not in self.nonces:
                return None
            if self.nonces[nonce] not in (None, claim):
                return False
            self.nonces[nonce] = claim
            return True

    def get(self, image_id: str) -> ImageRecord | None:
        item = self.items.get(image_id)
        return ImageRecord.from_dict(item) if item else None

    def put(self, record: ImageRecord) -> bool:
        with self._lock:
            current = self.items.get(record.image_id)
            if current and current.get("sequencer") and record.sequencer and current["sequencer"] > record.sequencer:
                return False
            self.items[record.image_id] = from_item(to_item(record)).to_dict()  # a deep copy, typed as DynamoDB types it
            return True

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        with self._lock:
            current = self.items.get(image_id)
            if current is None or current.get("updated_at") != updated_at:
                return False
            del self.items[image_id]
            return True

    def replace_version(self, record: ImageRecord, updated_at: str) -> bool:
        with self._lock:
            current = self.items.get(record.image_id)
            if current is None or current.get("updated_at") != updated_at:
                return False
            self.items[record.image_id] = from_item(to_item(record)).to_dict()
            return True

    def list_images(self, *, status: str | None, limit: int, after: Mapping[str, str] | None = None, exclude: tuple[str, ...] = ()) -> Page:
        _, attribute, value = index_for(status)
        with self._lock:
            matching = [
                r for r in self.items.values() if r.get(attribute) == value and r.get("updated_at") and r.get("status") not in exclude
            ]
        matching.sort(key=lambda r: (r["updated_at"], r["image_id"]), reverse=True)
        if after:
            mark = (after["updated_at"], after["image_id"])
            matching = [r for r in matching if (r["updated_at"], r["image_id"]) < mark]
        page = [ImageRecord.from_dict(r) for r in matching[:limit]]
        return Page(page, index_key(page[-1], status) if len(matching) > limit else None)
