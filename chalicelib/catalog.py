"""The image catalog: `Catalog` protocol, DynamoDB implementation and an in-memory one.

Writes are conditional on the S3 event `sequencer`, so a late or duplicate event for a key
that has since been overwritten can never clobber the newer result.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from botocore.exceptions import ClientError

Record = dict[str, Any]

_CONDITION = "attribute_not_exists(image_id) OR attribute_not_exists(sequencer) OR sequencer <= :sequencer"
LISTING = "images"  # the constant partition of GSI `by_updated` (every record carries it)
_MAX_QUERY_ROUNDS = 10  # a page needs more than one Query only when DynamoDB hits its 1 MB cap


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first. `last` is the index key of the last item when
    more items follow (pass it back as `after`), else None."""

    items: list[Record]
    last: dict[str, str] | None


def index_for(status: str | None) -> tuple[str, str, str]:
    """(index name, partition attribute, partition value) serving a listing."""
    return ("by_status", "status", status) if status else ("by_updated", "listing", LISTING)


def index_key(record: Mapping[str, Any], status: str | None) -> dict[str, str]:
    """The key DynamoDB needs to resume a Query on the listing's index after `record`."""
    _, attribute, value = index_for(status)
    return {"image_id": str(record["image_id"]), attribute: value, "updated_at": str(record["updated_at"])}


def sequencer_order(sequencer: str | None) -> str | None:
    """S3 sequencers compare as hex numbers: left-pad so string order equals numeric order."""
    if not sequencer:
        return None
    return sequencer.upper().rjust(32, "0")


class Catalog(Protocol):
    def get(self, image_id: str) -> Record | None: ...
    def put(self, record: Record) -> bool:
        """Store `record`; False (and nothing written) if a newer event already wrote it."""
        ...

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        """Delete only if the record is still the one written at `updated_at`; False if it changed."""
        ...

    def list_images(self, *, status: str | None, limit: int, after: Mapping[str, str] | None = None, exclude: tuple[str, ...] = ()) -> Page:
        """Newest first (by `updated_at`), optionally only one status or without some statuses;
        `after` is a previous Page.last."""
        ...


class DynamoCatalog:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    def get(self, image_id: str) -> Record | None:
        response = self._db.get_item(TableName=self.table, Key={"image_id": {"S": image_id}}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def put(self, record: Record) -> bool:
        item = to_item(record)
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": item}
        if record.get("sequencer"):
            kwargs["ConditionExpression"] = _CONDITION
            kwargs["ExpressionAttributeValues"] = {":sequencer": {"S": record["sequencer"]}}
        try:
            self._db.put_item(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        try:
            self._db.delete_item(
                TableName=self.table,
                Key={"image_id": {"S": image_id}},
                ConditionExpression="updated_at = :updated_at",
                ExpressionAttributeValues={":updated_at": {"S": updated_at}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list_images(self, *, status: str | None, limit: int, after: Mapping[str, str] | None = None, exclude: tuple[str, ...] = ()) -> Page:
        # A Query on a GSI, never a Scan. One extra item is read so the last page says so
        # (next = null) instead of handing out a cursor that leads to an empty page. Excluded
        # statuses are filtered server-side, which can shorten a round: hence the loop.
        index, attribute, value = index_for(status)
        items: list[Record] = []
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


class MemoryCatalog:
    def __init__(self) -> None:
        self.items: dict[str, Record] = {}
        self._lock = threading.Lock()

    def get(self, image_id: str) -> Record | None:
        item = self.items.get(image_id)
        return from_item(to_item(item)) if item else None

    def put(self, record: Record) -> bool:
        with self._lock:
            current = self.items.get(record["image_id"])
            if current and current.get("sequencer") and record.get("sequencer") and current["sequencer"] > record["sequencer"]:
                return False
            self.items[record["image_id"]] = from_item(to_item(record))
            return True

    def delete_version(self, image_id: str, updated_at: str) -> bool:
        with self._lock:
            current = self.items.get(image_id)
            if current is None or current.get("updated_at") != updated_at:
                return False
            del self.items[image_id]
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
        page = [from_item(to_item(r)) for r in matching[:limit]]
        return Page(page, index_key(page[-1], status) if len(matching) > limit else None)


@cache
def _codec() -> tuple[Any, Any]:
    # boto3's (de)serializer, imported on first use: `import boto3` costs ~200 ms, which a
    # cold start that never touches the catalog (the notifier) should not pay.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute map; None values are dropped (DynamoDB has no use for them)."""
    serializer = _codec()[0]
    return {k: serializer.serialize(_plain(v)) for k, v in record.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> Record:
    deserializer = _codec()[1]
    return {k: _native(deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_native(v) for v in value]
    return value
