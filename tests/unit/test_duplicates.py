"""The near-duplicate index, the same assertions on DynamoDB (moto) and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.duplicates import (
    PREFIX,
    DynamoBandIndex,
    Entry,
    MemoryBandIndex,
    band_keys,
    lookup,
    original_of,
    register,
    reindex,
    unregister,
)
from tests.conftest import create_catalog_table

D = 14
TABLE = "catalog"


class Counting:
    """A boto3 client that counts the operations made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


@pytest.fixture(params=["dynamodb", "memory"])
def index(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryBandIndex()
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_catalog_table(client, TABLE)
        yield DynamoBandIndex(Counting(client), TABLE)


def flip(phash: str, bits: int) -> str:
    return f"{int(phash, 16) ^ ((1 << bits) - 1):016x}"  # the lowest `bits` bits inverted


BASE = "c3a55a3cc3a55a3c"
FIRST = Entry("a" * 32, BASE, "2026-01-01T00:00:00Z")
NEAR = Entry("b" * 32, flip(BASE, 6), "2026-01-02T00:00:00Z")
EDGE = Entry("c" * 32, flip(BASE, D), "2026-01-03T00:00:00Z")
FAR = Entry("d" * 32, flip(BASE, D + 1), "2026-01-04T00:00:00Z")


def test_lookup_confirms_by_the_full_distance_nearest_first(index: Any) -> None:
    for entry in (FIRST, NEAR, EDGE, FAR):
        register(index, entry, D)
    found = lookup(index, FIRST, D)
    assert [(m.entry.image_id, m.distance) for m in found] == [(NEAR.image_id, 6), (EDGE.image_id, D)]  # never itself, never FAR


def test_the_earliest_catalogued_image_is_the_original(index: Any) -> None:
    for entry in (NEAR, FIRST, EDGE):
        register(index, entry, D)
    assert original_of(EDGE, lookup(index, EDGE, D)) == FIRST.image_id
    assert original_of(NEAR, lookup(index, NEAR, D)) == FIRST.image_id
    assert original_of(FIRST, lookup(index, FIRST, D)) is None  # the first one is nobody's duplicate


def test_removed_images_are_no_longer_found(index: Any) -> None:
    register(index, FIRST, D)
    register(index, NEAR, D)
    unregister(index, FIRST, D)
    assert lookup(index, NEAR, D) == []
    unregister(index, FIRST, D)  # twice is harmless (a retried removal)


def test_an_empty_index_finds_nothing(index: Any) -> None:
    assert lookup(index, FIRST, D) == []


def test_dynamodb_lookup_is_one_batch_read_and_bands_stay_out_of_the_listing() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_catalog_table(client, TABLE)
        counting = Counting(client)
        index = DynamoBandIndex(counting, TABLE)
        register(index, FIRST, D)
        counting.calls.clear()
        lookup(index, NEAR, D)
        assert counting.calls == ["batch_get_item"]
        keys = band_keys(FIRST.phash, D)
        item = client.get_item(TableName=TABLE, Key={"image_id": {"S": keys[0]}})["Item"]
        assert set(item) == {"image_id", "members"} and item["members"]["SS"] == [FIRST.member]
        for name, attribute, value in (("by_updated", "listing", "images"), ("by_status", "status", "processed")):
            query = client.query(
                TableName=TABLE,
                IndexName=name,
                KeyConditionExpression="#p = :p",
                ExpressionAttributeNames={"#p": attribute},
                ExpressionAttributeValues={":p": {"S": value}},
            )
            assert query["Items"] == []


def test_band_keys_can_never_be_image_ids() -> None:
    keys = band_keys(BASE, D)
    assert len(keys) == D + 1 and all(k.startswith(PREFIX) and len(k) != 32 for k in keys)
    assert Entry.parse(FIRST.member) == FIRST and Entry.parse("junk") is None


SETTINGS_ENV = {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"}


def test_duplicate_settings_default_to_flag_at_the_measured_distance() -> None:
    from chalicelib.settings import DEFAULT_DUPLICATE_MAX_DISTANCE, Settings

    settings = Settings.from_env(SETTINGS_ENV)
    assert (settings.duplicates, settings.duplicate_max_distance) == ("flag", DEFAULT_DUPLICATE_MAX_DISTANCE)
    strict = Settings.from_env(SETTINGS_ENV | {"DUPLICATES": "reject", "DUPLICATE_MAX_DISTANCE": "6"})
    assert (strict.duplicates, strict.duplicate_max_distance) == ("reject", 6)


@pytest.mark.parametrize(("name", "value"), [("DUPLICATES", "delete"), ("DUPLICATE_MAX_DISTANCE", "-1"), ("DUPLICATE_MAX_DISTANCE", "40")])
def test_bad_duplicate_settings_name_the_variable(name: str, value: str) -> None:
    from chalicelib.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=name):
        Settings.from_env(SETTINGS_ENV | {name: value})


@dataclass(frozen=True)
class Rec:
    image_id: str
    phash: str | None
    created_at: str | None
    status: str | None = "processed"


def test_reindex_follows_a_record_through_its_life(index: Any) -> None:
    register(index, FIRST, D)
    first = Rec(NEAR.image_id, NEAR.phash, NEAR.since)
    reindex(index, None, first, D)  # processed
    assert [m.entry.image_id for m in lookup(index, FIRST, D)] == [NEAR.image_id]
    moved = Rec(NEAR.image_id, FAR.phash, NEAR.since)
    reindex(index, first, moved, D)  # reprocessed into another picture: the old entry goes
    assert lookup(index, FIRST, D) == []
    reindex(index, moved, Rec(NEAR.image_id, FAR.phash, NEAR.since, "rejected"), D)  # rejected now: out
    assert lookup(index, Entry("e" * 32, FAR.phash, "2027"), D) == []
    reindex(index, None, Rec("f" * 32, None, "2026"), D)  # no hash (an old record): nothing to index
