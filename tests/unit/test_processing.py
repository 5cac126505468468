"""The upload use case with in-memory adapters: keys, records, events, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import keys, processing, removal
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.presets import CLASSIC, Profile
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import SETTINGS, make_pipeline, stored_record, upload


@pytest.mark.parametrize(
    "source_keys",
    [
        ["uploads/a/photo.jpg", "uploads/b/photo.jpg", "uploads/a/photo.png"],
        ["uploads/x y.jpg", "uploads/x+y.jpg", "uploads/x%20y.jpg", "uploads/ünï cødé 写真.jpg"],
    ],
)
def test_different_sources_never_share_output_keys(source_keys: list[str]) -> None:
    folders = {keys.source_folder(SETTINGS, k) for k in source_keys}
    assert len(folders) == len(source_keys)
    assert all(f.startswith("renditions/") for f in folders)


@pytest.mark.parametrize(
    "key",
    ["uploads/../../etc/passwd.jpg", "uploads/a//b.jpg", "uploads/./x.jpg", "uploads/_by-id/abc/photo.jpg", "uploads/tab\there.jpg"],
)
def test_unsafe_keys_go_to_a_hashed_folder(key: str) -> None:
    folder = keys.output_folder(SETTINGS, key, "0123456789abcdef")
    assert folder == f"renditions/_by-id/{keys.image_id_for(key)}/0123456789abcdef/"


def test_longest_source_key_gives_valid_output_keys() -> None:
    key = "uploads/" + "d/" * 300 + "é" * 200 + ".jpg"
    assert len(key.encode()) <= 1024
    p = make_pipeline(CLASSIC)
    outcome = upload(p, key, fixture_bytes("orient_landscape_1.jpg"))
    assert outcome.status == "processed"
    for rendition in outcome.renditions:
        assert len(rendition.key.encode("utf-8")) <= 1024
        assert rendition.key.startswith("renditions/_by-id/")


def test_keys_are_mirrored_under_the_output_prefix() -> None:
    p = make_pipeline()
    outcome = upload(p, "uploads/shop/shoes/red shoe.jpg", fixture_bytes("orient_landscape_6.jpg"))
    keys = sorted(r.key for r in outcome.renditions)
    [version] = {k.split("/")[-2] for k in keys}
    assert len(version) == 16 and int(version, 16) >= 0
    assert keys == sorted(
        f"renditions/shop/shoes/red shoe.jpg/{version}/{n}" for n in ["thumbnail.jpg", "w320.avif", "w320.jpg", "w320.webp"]
    )
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    assert store.keys("out") == keys
    stored = store.buckets["out"][keys[0]]
    assert stored.metadata["source-key"] == "uploads/shop/shoes/red shoe.jpg"
    assert stored.cache_control == "public, max-age=31536000, immutable"


def test_processed_record_and_event() -> None:
    p = make_pipeline()
    outcome = upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_6.jpg"))
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and outcome.record is not None and record == outcome.record.to_dict()
    assert record["status"] == "processed"
    assert (record["width"], record["height"]) == (600, 450)
    assert record["format"] == "JPEG"
    assert {r["preset"] for r in record["renditions"]} == {"thumbnail", "w320_jpeg", "w320_webp", "w320_avif"}
    notifier = p.notifier
    assert isinstance(notifier, MemoryNotifier)
    [message] = notifier.messages
    assert message.attributes["event_type"] == "image.processed"
    body = message.json()
    assert body["type"] == "image.processed" and body["image_id"] == record["image_id"]
    assert len(body["renditions"]) == 4


def test_same_event_twice_gives_one_record_and_same_renditions() -> None:
    p = make_pipeline()
    first = upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    second = processing.handle_upload(p, Upload("up", "uploads/cat.jpg", sequencer="0A"))
    assert second.status == "processed"
    assert [r.key for r in first.renditions] == [r.key for r in second.renditions]
    assert isinstance(p.catalog, MemoryCatalog) and len(p.catalog.items) == 1


def test_older_event_never_clobbers_newer_result() -> None:
    p = make_pipeline()
    upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"), sequencer="0005B")
    late = processing.handle_upload(p, Upload("up", "uploads/cat.jpg", sequencer="0004F"))
    assert late.status == "ignored"
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and record["sequencer"].endswith("5B")


def test_rejected_overwrite_removes_previous_renditions() -> None:
    p = make_pipeline()
    good = upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"), sequencer="01")
    assert good.status == "processed"
    bad = upload(p, "uploads/cat.jpg", b"not an image at all", sequencer="02")
    assert bad.status == "rejected"
    assert isinstance(p.store, MemoryObjectStore)
    assert p.store.keys("out") == []
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and record["status"] == "rejected" and record["renditions"] == []


def test_keys_outside_prefix_and_folder_markers_are_ignored() -> None:
    p = make_pipeline()
    assert upload(p, "elsewhere/cat.jpg", fixture_bytes("orient_landscape_1.jpg")).status == "ignored"
    assert upload(p, "uploads/folder/", b"").status == "ignored"
    assert isinstance(p.catalog, MemoryCatalog) and p.catalog.items == {}


def test_too_large_is_rejected_before_download() -> None:
    settings = Settings.from_env(
        {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev", "MAX_SOURCE_BYTES": "1000"}
    )

    class NoDownload(MemoryObjectStore):
        def get(self, source):  # type: ignore[no-untyped-def]
            raise AssertionError("downloaded an object over the byte limit")

    p = make_pipeline(settings=settings, store=NoDownload())
    outcome = upload(p, "uploads/big.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert outcome.status == "rejected"
    assert outcome.record is not None and outcome.record.to_dict()["error_code"] == "too_large"


class FlakyStore(MemoryObjectStore):
    def __init__(self, fail_on: str) -> None:
        super().__init__()
        self.fail_on = fail_on

    def put(self, bucket: str, key: str, data: bytes, **kw: Any) -> None:
        if key.endswith(self.fail_on):
            raise ConnectionError("S3 went away")
        super().put(bucket, key, data, **kw)


def test_failed_rendition_upload_leaves_no_partial_outputs_and_raises() -> None:
    p = make_pipeline(store=FlakyStore("w320.webp"))
    with pytest.raises(ConnectionError):
        upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert isinstance(p.store, MemoryObjectStore) and p.store.keys("out") == []
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and record["status"] == "failed" and record["renditions"] == []
    assert isinstance(p.notifier, MemoryNotifier)
    assert [m.attributes["event_type"] for m in p.notifier.messages] == ["image.failed"]


def test_encoder_failure_after_some_renditions_were_written_removes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # Renditions are uploaded as soon as each is encoded; if a later encode fails, the ones
    # already written must not stay behind.
    from chalicelib.imaging import codec

    real_encode = codec.encode
    written_before_failure: list[str] = []

    def encode(image: Any, fmt: str, quality: int, options: dict[str, object]) -> bytes:
        if fmt == "WEBP":
            written_before_failure.extend(p.store.keys("out"))  # type: ignore[attr-defined]
            raise MemoryError("encoder ran out of memory")
        return real_encode(image, fmt, quality, options)

    monkeypatch.setattr(codec, "encode", encode)
    p = make_pipeline(settings=SETTINGS)
    with pytest.raises(MemoryError):
        upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert isinstance(p.store, MemoryObjectStore) and p.store.keys("out") == []
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and record["status"] == "failed"


def test_worker_count_follows_the_memory_lambda_pays_for() -> None:
    from chalicelib.imaging import render

    cpus = render.worker_count()
    assert 1 <= cpus <= 4
    assert render.worker_count(3) == 3  # MAX_WORKERS wins
    assert render.worker_count(0, 512) == 1
    assert render.worker_count(0, 1769) == 1
    assert render.worker_count(0, 2048) == min(cpus, 2)
    env = {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"}
    assert Settings.from_env({**env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}).lambda_memory_mb == 2048


def test_publish_failure_never_loses_a_processed_image(capsys: pytest.CaptureFixture[str]) -> None:
    class DeadNotifier(MemoryNotifier):
        def publish(self, *a: Any, **kw: Any) -> str:
            raise ConnectionError("SNS is down")

    p = make_pipeline(notifier=DeadNotifier())
    outcome = upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert outcome.status == "processed"
    assert stored_record(p, "uploads/cat.jpg") is not None
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "publish.failed" and line.get("PublishFailures") == 1 for line in lines)


def test_outcome_line_is_embedded_metric_format(capsys: pytest.CaptureFixture[str]) -> None:
    p = make_pipeline()
    upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    upload(p, "uploads/bad.jpg", b"GIF89a broken")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    processed = next(line for line in lines if line["event"] == "image.processed")
    rejected = next(line for line in lines if line["event"] == "image.rejected")
    directive = processed["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "ImagePipeline"
    assert {m["Name"] for m in directive["Metrics"]} >= {"ImagesProcessed", "ProcessingTime", "RenditionsWritten"}
    assert processed["ImagesProcessed"] == 1 and processed["renditions"] == 4
    assert rejected["ImagesRejected"] == 1 and rejected["error_code"] == "corrupt_image"


def test_events_for_another_bucket_are_ignored() -> None:
    """image_id and output keys come from the key alone: another bucket's object of the same
    key would overwrite ours, so a trigger wired to a second bucket changes nothing."""
    p = make_pipeline()
    assert isinstance(p.store, MemoryObjectStore)
    upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    before = {k: v.data for k, v in p.store.buckets["out"].items()}
    p.store.add("someone-else", "uploads/cat.jpg", b"not even an image")
    for handle in (processing.handle_upload, removal.remove_source):
        outcome = handle(p, Upload("someone-else", "uploads/cat.jpg", sequencer="FF"))
        assert outcome.status == "ignored" and "UPLOAD_BUCKET" in (outcome.reason or "")
    assert {k: v.data for k, v in p.store.buckets["out"].items()} == before
    assert (stored_record(p, "uploads/cat.jpg") or {})["status"] == "processed"


def test_a_source_smaller_than_every_preset_is_processed_with_no_renditions() -> None:
    """A custom profile of wide renditions only, and a small image: each preset is skipped
    (nothing is upscaled), and that is the outcome. It was a ValueError inside render
    (max() of no plans): recorded as failed, retried, then dead-lettered."""
    import io

    from PIL import Image

    from chalicelib.presets import Preset

    wide_only = Profile("wide", (Preset("w2000", "JPEG", width=2000), Preset("w3000", "WEBP", width=3000)))
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), "teal").save(buffer, "JPEG")
    p = make_pipeline(wide_only)
    outcome = upload(p, "uploads/small.jpg", buffer.getvalue())
    assert outcome.status == "processed" and outcome.renditions == ()
    assert outcome.record is not None and outcome.record.to_dict()["skipped_presets"] == ["w2000", "w3000"]
    assert isinstance(p.store, MemoryObjectStore) and p.store.keys("out") == []

    # Corrupt data is still found out, although no pixels are needed.
    rejected = upload(p, "uploads/broken.jpg", buffer.getvalue()[:300], sequencer="0B")
    assert rejected.status == "rejected" and rejected.record is not None and rejected.record.to_dict()["error_code"] == "corrupt_image"
