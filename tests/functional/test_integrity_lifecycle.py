"""Integrity under moto: a re-upload is never stale (versioned rendition keys, no orphans)."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.test import Client

from chalicelib.keys import rendition_version
from chalicelib.presets import WEB
from tests.conftest import fixture_bytes
from tests.support.handlers import catalog_item, processed_keys, put_and_process

KEY = "uploads/avatar.jpg"


@pytest.fixture
def client(aws: dict[str, Any]) -> Any:
    import app

    with Client(app.app, stage_name="dev") as c:
        yield c


def test_reupload_gets_new_rendition_urls_and_the_old_ones_are_removed(aws: dict[str, Any], client: Any) -> None:
    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_1.jpg"))
    first = processed_keys(aws)
    head = aws["s3"].head_object(Bucket=aws["env"]["UPLOAD_BUCKET"], Key=KEY)
    version = rendition_version(head.get("VersionId"), head["ETag"].strip('"'), WEB.version)
    assert first and all(k.startswith(f"renditions/avatar.jpg/{version}/") for k in first)

    put_and_process(aws, client, KEY, fixture_bytes("orient_landscape_6.jpg"))  # the same name, a new picture
    second = processed_keys(aws)
    record = catalog_item(aws, KEY)
    assert record is not None and record["status"] == "processed"
    assert sorted(r["key"] for r in record["renditions"]) == second  # the record points at the current set
    assert not set(first) & set(second)  # new URLs: what a CDN cached for a year is never served for the new picture
    head = aws["s3"].head_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=second[0])
    assert "immutable" in head["CacheControl"]
