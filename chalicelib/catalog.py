"""The image catalog: `Catalog` protocol, DynamoDB implementation and an in-memory one.

Writes are conditional on the S3 event `sequencer`, so a late or duplicate event for a key
that has since been overwritten can never clobber the newer result.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from botocore.exceptions import ClientError

Record = dict[str, Any]

_CONDITION = "attribute_not_exists(image_id) OR attribute_not_exists(sequencer) OR sequencer <= :sequencer"


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

    def delete(self, image_id: str) -> None: ...


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

    def delete(self, image_id: str) -> None:
        self._db.delete_item(TableName=self.table, Key={"image_id": {"S": image_id}})


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

    def delete(self, image_id: str) -> None:
        with self._lock:
            self.items.pop(image_id, None)


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
