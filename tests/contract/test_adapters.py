"""One contract for each adapter, run against both implementations: in-memory (what the unit
tests use) and AWS (S3, DynamoDB, SNS under moto, what Lambda uses). A behaviour the service
relies on is asserted here once, so the two can never drift apart."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.catalog import Catalog, DynamoCatalog, MemoryCatalog
from chalicelib.models import SourceChanged, SourceObject
from chalicelib.notify import MemoryNotifier, Notifier, SnsNotifier
from chalicelib.records import ImageRecord
from chalicelib.storage import IMMUTABLE, MemoryObjectStore, ObjectStore, S3ObjectStore, SourceLister
from tests.conftest import create_catalog_table

BUCKET = "contract-bucket"
TABLE = "contract-catalog"
TOPIC = "contract-events"
IMPLEMENTATIONS = ["memory", "aws"]


@dataclass
class Stored:
    """What an object store holds for a key, read around the adapter (which has no getter)."""

    content_type: str
    metadata: dict[str, str]
    cache_control: str | None
    tags: dict[str, str]


@dataclass
class Store:
    adapter: Any  # ObjectStore and SourceLister
    inspect: Callable[[str], Stored]


@dataclass
class Sent:
    topic: str  # the topic's name, whether published by name or ARN
    subject: str
    message: str
    attributes: dict[str, str]


@dataclass
class Publisher:
    adapter: Notifier
    topic_arn: str
    sent: Callable[[], list[Sent]]


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, Any]]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        clients = {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "dynamodb", "sns", "sqs", "sts")}
        yield clients


@pytest.fixture(params=IMPLEMENTATIONS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        memory = MemoryObjectStore()

        def held(key: str) -> Stored:
            obj = memory.buckets[BUCKET][key]
            return Stored(obj.content_type, obj.metadata, obj.cache_control, obj.tags)

        yield Store(memory, held)
        return
    s3 = request.getfixturevalue("moto")["s3"]
    s3.create_bucket(Bucket=BUCKET)

    def stored(key: str) -> Stored:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        tags = s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
        return Stored(head["ContentType"], head["Metadata"], head.get("CacheControl"), {t["Key"]: t["Value"] for t in tags})

    yield Store(S3ObjectStore(s3), stored)
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    while listed:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
        listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture(params=IMPLEMENTATIONS)
def catalog(request: pytest.FixtureRequest) -> Iterator[Catalog]:
    if request.param == "memory":
        yield MemoryCatalog()
        return
    ddb = request.getfixturevalue("moto")["dynamodb"]
    create_catalog_table(ddb, TABLE)
    yield DynamoCatalog(ddb, TABLE)
    ddb.delete_table(TableName=TABLE)


@pytest.fixture(params=IMPLEMENTATIONS)
def publisher(request: pytest.FixtureRequest) -> Iterator[Publisher]:
    if request.param == "memory":
        memory = MemoryNotifier()

        def recorded() -> list[Sent]:
            return [Sent(m.topic.rsplit(":", 1)[-1], m.subject, m.message, dict(m.attributes)) for m in memory.messages]

        yield Publisher(memory, f"arn:aws:sns:us-east-1:123456789012:{TOPIC}", recorded)
        return
    aws = request.getfixturevalue("moto")
    sns, sqs = aws["sns"], aws["sqs"]
    topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{TOPIC}-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]

    def delivered() -> list[Sent]:
        out: list[Sent] = []
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            for message in messages:
                body = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()}
                out.append(Sent(body["TopicArn"].rsplit(":", 1)[-1], body["Subject"], body["Message"], attributes))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    yield Publisher(SnsNotifier(sns, aws["sts"], "us-east-1"), topic_arn, delivered)
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=queue_url)
    sns.delete_topic(TopicArn=topic_arn)


def put(store: Store, key: str, data: bytes, content_type: str = "image/jpeg") -> SourceObject:
    store.adapter.put(BUCKET, key, data, content_type=content_type, metadata={})
    seen: SourceObject | None = store.adapter.head(BUCKET, key)
    assert seen is not None
    return seen


# ObjectStore ---------------------------------------------------------------------------------


def test_store_head_of_a_missing_object_is_none(store: Store) -> None:
    adapter: ObjectStore = store.adapter
    assert adapter.head(BUCKET, "uploads/missing.jpg") is None


def test_store_put_then_head_describes_the_object(store: Store) -> None:
    data = b"\xff\xd8 not really a jpeg"
    seen = put(store, "uploads/ünï cødé/a b+c.jpg", data)
    assert (seen.bucket, seen.key, seen.size, seen.content_type) == (BUCKET, "uploads/ünï cødé/a b+c.jpg", len(data), "image/jpeg")
    assert seen.etag == hashlib.md5(data).hexdigest()


def test_store_put_keeps_content_type_metadata_and_cache_control(store: Store) -> None:
    store.adapter.put(BUCKET, "out/a.webp", b"RIFF", content_type="image/webp", metadata={"source-key": "uploads/a.jpg", "preset": "w320"})
    store.adapter.put(BUCKET, "out/index.json", b"{}", content_type="application/json", metadata={}, cache_control="no-cache")
    assert store.inspect("out/a.webp") == Stored("image/webp", {"source-key": "uploads/a.jpg", "preset": "w320"}, IMMUTABLE, {})
    assert store.inspect("out/index.json") == Stored("application/json", {}, "no-cache", {})


def test_store_get_returns_exactly_what_head_saw(store: Store) -> None:
    seen = put(store, "uploads/a.jpg", b"first")
    assert store.adapter.get(seen) == b"first"


def test_store_get_after_an_overwrite_raises_source_changed(store: Store) -> None:
    seen = put(store, "uploads/a.jpg", b"first")
    put(store, "uploads/a.jpg", b"second, longer")
    with pytest.raises(SourceChanged):
        store.adapter.get(seen)


def test_store_get_after_a_delete_raises_source_changed(store: Store) -> None:
    seen = put(store, "uploads/a.jpg", b"first")
    store.adapter.delete(BUCKET, ["uploads/a.jpg"])
    with pytest.raises(SourceChanged):
        store.adapter.get(seen)


def test_store_get_of_another_etag_raises_source_changed(store: Store) -> None:
    seen = put(store, "uploads/a.jpg", b"first")
    with pytest.raises(SourceChanged):
        store.adapter.get(replace(seen, etag=hashlib.md5(b"other").hexdigest(), version_id=None))


def test_store_delete_removes_only_the_given_keys_and_ignores_missing_ones(store: Store) -> None:
    for key in ("out/a/1.jpg", "out/a/2.jpg", "out/b/1.jpg"):
        put(store, key, key.encode())
    store.adapter.delete(BUCKET, ["out/a/1.jpg", "out/a/2.jpg", "out/never-there.jpg"])
    store.adapter.delete(BUCKET, [])
    assert [k for k in ("out/a/1.jpg", "out/a/2.jpg", "out/b/1.jpg") if store.adapter.head(BUCKET, k)] == ["out/b/1.jpg"]


def test_store_delete_takes_more_keys_than_one_s3_request_does(store: Store) -> None:
    keys = [f"out/many/{n:04}.jpg" for n in range(1003)]
    for key in keys:
        store.adapter.put(BUCKET, key, b"x", content_type="image/jpeg", metadata={})
    store.adapter.delete(BUCKET, iter(keys))
    assert store.adapter.list_keys(BUCKET, "out/many/", start_after=None, limit=10) == ([], False)


def test_store_tag_replaces_the_tags(store: Store) -> None:
    put(store, "uploads/a.jpg", b"a")
    store.adapter.tag(BUCKET, "uploads/a.jpg", {"image-pipeline": "processed", "profile": "web"})
    store.adapter.tag(BUCKET, "uploads/a.jpg", {"image-pipeline": "rejected"})
    assert store.inspect("uploads/a.jpg").tags == {"image-pipeline": "rejected"}


def test_store_lists_keys_in_order_in_pages(store: Store) -> None:
    adapter: SourceLister = store.adapter
    keys = ["uploads/b.jpg", "uploads/a.jpg", "uploads/é.jpg", "uploads/z/deep.jpg", "uploads/Z.jpg", "other/x.jpg"]
    for key in keys:
        put(store, key, b"x")
    expected = sorted(k for k in keys if k.startswith("uploads/"))  # code point order = S3's UTF-8 byte order
    first, more = adapter.list_keys(BUCKET, "uploads/", start_after=None, limit=2)
    assert (first, more) == (expected[:2], True)
    rest, more = adapter.list_keys(BUCKET, "uploads/", start_after=first[-1], limit=10)
    assert (rest, more) == (expected[2:], False)
    assert adapter.list_keys(BUCKET, "uploads/", start_after=expected[-1], limit=10) == ([], False)
    assert adapter.list_keys(BUCKET, "nothing/", start_after=None, limit=10) == ([], False)


# Catalog --------------------------------------------------------------------------------------


def record(image_id: str, updated_at: str, *, status: str = "processed", sequencer: str | None = None, **extra: Any) -> ImageRecord:
    fields = {"image_id": image_id, "listing": "images", "status": status, "updated_at": updated_at, "sequencer": sequencer, **extra}
    return ImageRecord.from_dict({k: v for k, v in fields.items() if v is not None})


def test_catalog_get_of_a_missing_record_is_none(catalog: Catalog) -> None:
    assert catalog.get("missing") is None


def test_catalog_round_trips_a_record_and_drops_none(catalog: Catalog) -> None:
    renditions = [{"preset": "w320", "format": "WEBP", "width": 320, "height": 240, "bytes": 1234, "ratio": 0.75, "key": "r/a.webp"}]
    written = record("img1", "2026-01-02T03:04:05.000+00:00", sequencer="0A", renditions=renditions, error=None, flags=["a", "b"])
    assert catalog.put(written) is True
    stored = catalog.get("img1")
    assert stored is not None
    read = stored.to_dict()
    assert read == {
        "image_id": "img1",
        "listing": "images",
        "status": "processed",
        "updated_at": "2026-01-02T03:04:05.000+00:00",
        "sequencer": "0A",
        "renditions": [{"preset": "w320", "format": "WEBP", "width": 320, "height": 240, "bytes": 1234, "ratio": 0.75, "key": "r/a.webp"}],
        "flags": ["a", "b"],
    }
    assert read is not None
    assert isinstance(read["renditions"][0]["width"], int) and isinstance(read["renditions"][0]["ratio"], float)
    assert read["flags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("first", "second", "second_wins"),
    [
        ("0000000000000000000000000000000A", "00000000000000000000000000000009", False),  # older never overwrites newer
        ("0000000000000000000000000000000A", "0000000000000000000000000000000A", True),  # a redelivery rewrites the same
        ("0000000000000000000000000000000A", "0000000000000000000000000000000B", True),  # newer overwrites older
        (None, "0000000000000000000000000000000A", True),  # a record without sequencer never blocks
        ("0000000000000000000000000000000A", None, True),  # a write without sequencer is unconditional
    ],
    ids=["older-loses", "equal-wins", "newer-wins", "over-unsequenced", "unsequenced-write"],
)
def test_catalog_write_is_conditional_on_the_s3_sequencer(
    catalog: Catalog, first: str | None, second: str | None, second_wins: bool
) -> None:
    assert catalog.put(record("img1", "2026-01-01T00:00:00.000+00:00", sequencer=first, source_etag="first")) is True
    assert catalog.put(record("img1", "2026-01-01T00:00:01.000+00:00", sequencer=second, source_etag="second")) is second_wins
    current = catalog.get("img1")
    assert current is not None
    assert current.source_etag == ("second" if second_wins else "first")


def test_catalog_delete_version_deletes_only_the_version_it_names(catalog: Catalog) -> None:
    catalog.put(record("img1", "2026-01-01T00:00:01.000+00:00"))
    assert catalog.delete_version("img1", "2026-01-01T00:00:00.000+00:00") is False
    assert catalog.get("img1") is not None
    assert catalog.delete_version("img1", "2026-01-01T00:00:01.000+00:00") is True
    assert catalog.get("img1") is None
    assert catalog.delete_version("img1", "2026-01-01T00:00:01.000+00:00") is False
    assert catalog.delete_version("never-there", "2026-01-01T00:00:01.000+00:00") is False


def test_catalog_replace_version_replaces_only_the_version_it_names(catalog: Catalog) -> None:
    catalog.put(record("img1", "2026-01-01T00:00:01.000+00:00"))
    tombstone = replace(record("img1", "2026-01-01T00:00:02.000+00:00"), status="deleted")
    assert catalog.replace_version(tombstone, "2026-01-01T00:00:00.000+00:00") is False
    assert catalog.get("img1") != tombstone
    assert catalog.replace_version(tombstone, "2026-01-01T00:00:01.000+00:00") is True
    assert catalog.get("img1") == tombstone
    assert catalog.replace_version(tombstone, "2026-01-01T00:00:01.000+00:00") is False  # it changed
    assert catalog.replace_version(replace(tombstone, image_id="never-there"), "2026-01-01T00:00:01.000+00:00") is False


def fill(catalog: Catalog, statuses: list[str]) -> list[str]:
    """One record per status, the first oldest; the image ids newest first."""
    for n, status in enumerate(statuses):
        catalog.put(record(f"img{n:02}", f"2026-01-01T00:00:{n:02}.000+00:00", status=status))
    return [f"img{n:02}" for n in reversed(range(len(statuses)))]


def every_page(catalog: Catalog, limit: int, **kw: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = catalog.list_images(limit=limit, after=after, **kw)
        pages.append([r.image_id for r in page.items])
        if page.last is None:
            return pages
        assert len(pages) < 50, "the cursor does not advance"
        after = page.last


def test_catalog_lists_newest_first_in_pages_without_an_empty_last_page(catalog: Catalog) -> None:
    newest_first = fill(catalog, ["processed"] * 6)
    assert every_page(catalog, 2, status=None) == [newest_first[0:2], newest_first[2:4], newest_first[4:6]]
    assert every_page(catalog, 4, status=None) == [newest_first[0:4], newest_first[4:6]]
    assert every_page(catalog, 6, status=None) == [newest_first]
    assert every_page(catalog, 10, status=None) == [newest_first]


def test_catalog_listing_of_an_empty_catalog_is_one_empty_last_page(catalog: Catalog) -> None:
    page = catalog.list_images(status=None, limit=5)
    assert (page.items, page.last) == ([], None)


def test_catalog_lists_one_status_or_excludes_some(catalog: Catalog) -> None:
    statuses = ["processed", "rejected", "processed", "failed", "processed", "rejected", "processing"]
    newest_first = fill(catalog, statuses)
    status_of = dict(zip(reversed(newest_first), statuses, strict=True))
    processed = [i for i in newest_first if status_of[i] == "processed"]
    assert [i for page in every_page(catalog, 2, status="processed") for i in page] == processed
    assert every_page(catalog, 5, status="failed") == [[i for i in newest_first if status_of[i] == "failed"]]
    assert every_page(catalog, 5, status="deleted") == [[]]
    kept = [i for i in newest_first if status_of[i] not in ("rejected", "processing")]
    pages = every_page(catalog, 2, status=None, exclude=("rejected", "processing"))
    assert [i for page in pages for i in page] == kept
    assert all(len(page) <= 2 for page in pages)


def test_catalog_listing_reaches_past_a_long_run_of_excluded_records(catalog: Catalog) -> None:
    # DynamoDB filters excluded statuses after reading, a few items per round and a bounded
    # number of rounds per page: a long excluded run must still lead on to the older records.
    statuses = ["processed"] * 2 + ["processing"] * 30 + ["processed"] * 2
    newest_first = fill(catalog, statuses)
    status_of = dict(zip(reversed(newest_first), statuses, strict=True))
    pages = every_page(catalog, 1, status=None, exclude=("processing",))
    assert [i for page in pages for i in page] == [i for i in newest_first if status_of[i] == "processed"]
    assert all(len(page) <= 1 for page in pages)


def test_catalog_listing_items_are_whole_records(catalog: Catalog) -> None:
    catalog.put(
        record(
            "img1",
            "2026-01-01T00:00:00.000+00:00",
            sequencer="0A",
            source_key="uploads/a.jpg",
            renditions=[{"preset": "w1", "key": "r/a.jpg", "format": "JPEG", "width": 1, "height": 1, "bytes": 1}],
        )
    )
    (item,) = catalog.list_images(status=None, limit=5).items
    assert item == catalog.get("img1")


# Notifier -------------------------------------------------------------------------------------


def test_notifier_publishes_by_topic_name_or_arn(publisher: Publisher) -> None:
    first = publisher.adapter.publish(TOPIC, subject="Image processed", message='{"a": 1}', attributes={"event_type": "processed"})
    second = publisher.adapter.publish(publisher.topic_arn, subject="Image rejected", message="plain text", attributes={})
    assert first and second and first != second
    assert publisher.sent() == [
        Sent(TOPIC, "Image processed", '{"a": 1}', {"event_type": "processed"}),
        Sent(TOPIC, "Image rejected", "plain text", {}),
    ]


@pytest.mark.parametrize(
    ("subject", "sent"),
    [
        ("Line one\nline two", "Line one?line two"),
        ("Photo ünï.jpg rejected", "Photo ?n?.jpg rejected"),
        ("x" * 150, "x" * 97 + "..."),
        ("   ", "image-pipeline"),
    ],
    ids=["newline", "non-ascii", "too-long", "blank"],
)
def test_notifier_makes_any_subject_one_sns_accepts(publisher: Publisher, subject: str, sent: str) -> None:
    publisher.adapter.publish(TOPIC, subject=subject, message="m", attributes={})
    assert [s.subject for s in publisher.sent()] == [sent]


# --- the near-duplicate index's band items (chalicelib/duplicates.py) ----------------------


def test_catalog_band_sets_add_read_and_remove_members(catalog: Catalog) -> None:
    keys = ["phash#d14.0.a", "phash#d14.1.b"]
    catalog.add_to_bands(keys, "2026|aaaa|img1")
    catalog.add_to_bands(keys[:1], "2026|bbbb|img2")
    catalog.add_to_bands(keys[:1], "2026|bbbb|img2")  # a set: adding twice keeps one
    assert catalog.band_members(keys) == {"2026|aaaa|img1", "2026|bbbb|img2"}
    assert catalog.band_members(keys[1:]) == {"2026|aaaa|img1"}
    catalog.remove_from_bands(keys, "2026|aaaa|img1")
    catalog.remove_from_bands(keys, "2026|aaaa|img1")  # removing what is gone is harmless
    assert catalog.band_members(keys) == {"2026|bbbb|img2"}
    assert catalog.band_members(["phash#d14.9.f"]) == set()


def test_catalog_band_items_are_not_images(catalog: Catalog) -> None:
    catalog.put(record("img1", "2026-01-01T00:00:01.000+00:00"))
    catalog.add_to_bands(["phash#d14.0.a"], "2026|aaaa|img1")
    assert catalog.list_images(status=None, limit=10).items == [catalog.get("img1")]
    assert catalog.list_images(status="processed", limit=10).items == [catalog.get("img1")]
    assert [r.image_id for r in catalog.get_many(["img1", "phash#d14.0.a", "missing", "img1"])] == ["img1"]
    assert catalog.get_many([]) == []


def test_catalog_form_nonces_are_claimed_once_and_stay_out_of_listings(catalog: Catalog) -> None:
    catalog.issue_nonce("n1", 2_000_000_000)
    assert catalog.claim_nonce("n1", "v:1") is True
    assert catalog.claim_nonce("n1", "v:1") is True  # the same version again (a retry)
    assert catalog.claim_nonce("n1", "v:2") is False  # another version: a replayed form
    assert catalog.claim_nonce("never-issued", "v:1") is None
    assert catalog.list_images(status=None, limit=10).items == []
    assert catalog.get("n1") is None
