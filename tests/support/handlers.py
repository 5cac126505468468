"""Driving the Chalice handlers against the moto stack (the `aws` fixture): put and process an
upload, read what landed in the processed bucket and the catalog."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from chalicelib.keys import image_id_for


def put_and_process(aws: dict[str, Any], client: Any, key: str, data: bytes) -> None:
    aws["s3"].put_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=key, Body=data)
    # S3 URL-encodes keys in notifications; chalice's test helper does not.
    event = client.events.generate_s3_event(bucket=aws["env"]["UPLOAD_BUCKET"], key=quote_plus(key))
    client.lambda_.invoke("process_upload", event)


def processed_keys(aws: dict[str, Any]) -> list[str]:
    listing = aws["s3"].list_objects_v2(Bucket=aws["env"]["PROCESSED_BUCKET"])
    return sorted(o["Key"] for o in listing.get("Contents", []))


def catalog_item(aws: dict[str, Any], key: str) -> dict[str, Any] | None:
    from chalicelib.records import from_item

    item = aws["ddb"].get_item(TableName=aws["env"]["CATALOG_TABLE"], Key={"image_id": {"S": image_id_for(key)}}).get("Item")
    return from_item(item).to_dict() if item else None
