"""Deletes, races between events, and reprocessing, with in-memory adapters."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from chalicelib import keys, processing, removal, reprocess
from chalicelib.adapters import Adapters
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.outcomes import Outcome
from chalicelib.presets import CLASSIC, WEB
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline, upload
from tools import reprocess as reprocess_cli

KEY = "uploads/cat.jpg"
ID = keys.image_id_for(KEY)


def store_of(p: Adapters) -> MemoryObjectStore:
    assert isinstance(p.store, MemoryObjectStore)
    return p.store


def record_of(p: Adapters, key: str = KEY) -> dict[str, Any]:
    record = p.catalog.get(keys.image_id_for(key))
    assert record is not None
    return record.to_dict()


def assert_catalog_matches_bucket(p: Adapters) -> None:
    """The invariant readers rely on: every listed rendition exists, nothing unlisted remains."""
    assert isinstance(p.catalog, MemoryCatalog)
    listed = {r["key"] for item in p.catalog.items.values() for r in item.get("renditions", [])}
    assert listed == set(store_of(p).keys("out"))


# --- deletes --------------------------------------------------------------------------------


def test_delete_removes_renditions_and_marks_the_record() -> None:
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="10")
    assert store_of(p).keys("out")
    store_of(p).remove("up", KEY)
    outcome = removal.remove_source(p, Upload("up", KEY, "ObjectRemoved:Delete", sequencer="11"))
    assert outcome.status == "deleted"
    assert store_of(p).keys("out") == []
    record = record_of(p)
    assert record["status"] == "deleted" and record["renditions"] == [] and "deleted_at" in record
    assert "removing" not in record
    assert isinstance(p.notifier, MemoryNotifier)
    assert p.notifier.messages[-1].attributes["event_type"] == "image.deleted"


def test_late_upload_event_after_delete_does_not_resurrect() -> None:
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="10")
    store_of(p).remove("up", KEY)
    removal.remove_source(p, Upload("up", KEY, "ObjectRemoved:Delete", sequencer="11"))
    # The create event is delivered again (at-least-once) after the delete was handled.
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="10")).status == "ignored"
    assert record_of(p)["status"] == "deleted"
    assert store_of(p).keys("out") == []


def test_delete_older_than_recorded_upload_is_ignored() -> None:
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="20")
    # A delete (sequencer 15) of the previous upload arrives after the re-upload was processed.
    outcome = removal.remove_source(p, Upload("up", KEY, "ObjectRemoved:Delete", sequencer="15"))
    assert outcome.status == "ignored"
    assert record_of(p)["status"] == "processed"
    assert_catalog_matches_bucket(p)


def test_delete_arriving_before_the_newer_upload_event() -> None:
    """Delete (seq 2), then re-upload (seq 3); the delete event is handled while the object
    already exists again: the current object is what the catalog must describe."""
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01")
    store_of(p).add("up", KEY, fixture_bytes("orient_landscape_6.jpg"))  # deleted and re-uploaded
    outcome = removal.remove_source(p, Upload("up", KEY, "ObjectRemoved:Delete", sequencer="02"))
    assert outcome.status == "processed"
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="03")).status == "processed"
    record = record_of(p)
    assert record["status"] == "processed" and record["source_etag"] == store_of(p).head("up", KEY).etag  # type: ignore[union-attr]
    assert_catalog_matches_bucket(p)


def test_versioned_bucket_removing_an_old_version_keeps_the_current_one() -> None:
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="05")
    before = store_of(p).keys("out")
    # ObjectRemoved:Delete of a non-current version id: the key still resolves to the recorded object.
    outcome = removal.remove_source(p, Upload("up", KEY, "ObjectRemoved:Delete", sequencer="06"))
    assert outcome.status == "ignored"
    assert store_of(p).keys("out") == before
    assert record_of(p)["status"] == "processed"


def test_delete_retry_after_a_failed_s3_delete_finishes_the_job(capsys: pytest.CaptureFixture[str]) -> None:
    class DeleteFailsOnce(MemoryObjectStore):
        failures = 1

        def delete(self, bucket: str, keys: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("S3 DeleteObjects timed out")
            super().delete(bucket, keys)

    p = make_pipeline(CLASSIC, store=DeleteFailsOnce())
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01")
    written = store_of(p).keys("out")
    assert len(written) == 5
    store_of(p).remove("up", KEY)
    deleted = Upload("up", KEY, "ObjectRemoved:Delete", sequencer="02")
    capsys.readouterr()
    with pytest.raises(ConnectionError):
        removal.remove_source(p, deleted)
    # The failure is logged, counted and announced (the renditions of a deleted source are
    # still public until the retry), not only a Lambda traceback.
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["event"] == "image.failed" and line["operation"] == "remove" and line["ImagesFailed"] == 1
    assert line["key"] == KEY and "S3 DeleteObjects timed out" in line["error"]
    assert isinstance(p.notifier, MemoryNotifier)
    failed = json.loads(p.notifier.messages[-1].message)
    assert failed["type"] == "image.failed" and failed["operation"] == "remove" and failed["source_key"] == KEY
    # Readers already see no renditions; the record remembers what still has to go.
    mid = record_of(p)
    assert mid["status"] == "deleted" and mid["renditions"] == [] and set(written) <= set(mid["removing"])
    assert removal.remove_source(p, deleted).status == "deleted"  # Lambda's retry
    assert store_of(p).keys("out") == []
    assert "removing" not in record_of(p)


def test_delete_of_unknown_key_or_folder_is_ignored() -> None:
    p = make_pipeline()
    assert removal.remove_source(p, Upload("up", "uploads/never-seen.jpg", "ObjectRemoved:Delete", "01")).status == "ignored"
    assert removal.remove_source(p, Upload("up", "uploads/folder/", "ObjectRemoved:Delete", "01")).status == "ignored"
    assert removal.remove_source(p, Upload("up", "elsewhere/x.jpg", "ObjectRemoved:Delete", "01")).status == "ignored"
    assert isinstance(p.catalog, MemoryCatalog) and p.catalog.items == {}


# --- races ----------------------------------------------------------------------------------


def test_concurrent_duplicate_events_leave_one_record_and_the_same_renditions() -> None:
    p = make_pipeline()
    store_of(p).add("up", KEY, fixture_bytes("orient_landscape_3.jpg"))
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(processing.handle_upload(p, Upload("up", KEY, sequencer="0A")))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.status for o in outcomes] == ["processed"] * 4
    assert isinstance(p.catalog, MemoryCatalog) and len(p.catalog.items) == 1
    assert len({tuple(sorted(r.key for r in o.renditions)) for o in outcomes}) == 1
    assert_catalog_matches_bucket(p)


def test_older_event_finishing_last_cannot_leave_its_pixels_behind() -> None:
    """Event A (old content) renders slowly; event B (the overwrite) completes meanwhile.
    A's files land on top of B's; A loses the conditional write and must repair."""
    a_has_read = threading.Event()
    a_may_write = threading.Event()

    class SlowForOld(MemoryObjectStore):
        def get(self, source: Any) -> bytes:
            data = super().get(source)
            if source.etag == old_etag:
                a_has_read.set()
            return data

        def put(self, bucket: str, key: str, data: bytes, **kw: Any) -> None:
            if kw["metadata"]["source-etag"] == old_etag and threading.current_thread().name.startswith("upload"):
                a_may_write.wait(10)
            super().put(bucket, key, data, **kw)

    p = make_pipeline(store=SlowForOld())
    old_etag = store_of(p).add("up", KEY, fixture_bytes("orient_landscape_1.jpg")).etag
    result: dict[str, Outcome] = {}
    a = threading.Thread(target=lambda: result.update(a=processing.handle_upload(p, Upload("up", KEY, sequencer="01"))))
    a.start()
    assert a_has_read.wait(10)
    new_etag = store_of(p).add("up", KEY, fixture_bytes("orient_landscape_6.jpg")).etag  # overwritten while A renders
    result["b"] = processing.handle_upload(p, Upload("up", KEY, sequencer="02"))
    a_may_write.set()
    a.join()
    assert result["b"].status == "processed" and result["a"].status == "ignored"
    record = record_of(p)
    assert record["sequencer"].endswith("02") and record["source_etag"] == new_etag
    for key in store_of(p).keys("out"):
        assert store_of(p).buckets["out"][key].metadata["source-etag"] == new_etag, key
    assert_catalog_matches_bucket(p)


# --- reprocessing -----------------------------------------------------------------------------


def seed(p: Adapters, count: int) -> list[str]:
    keys = [f"uploads/batch/img{i:03d}.jpg" for i in range(count)]
    data = fixture_bytes("orient_landscape_2.jpg")
    for key in keys:
        upload(p, key, data, sequencer="01")
    return keys


def test_reprocess_rerenders_only_out_of_date_sources_in_bounded_batches(tmp_path: Path) -> None:
    store, catalog = MemoryObjectStore(), MemoryCatalog()
    old = make_pipeline(WEB, store=store, catalog=catalog)
    keys = seed(old, 7)
    new = make_pipeline(CLASSIC, store=store, catalog=catalog)
    upload(new, "uploads/batch/img002.jpg", fixture_bytes("orient_landscape_2.jpg"), sequencer="02")  # already current
    store.add("up", "uploads/batch/", b"")  # a folder marker
    lines: list[str] = []
    pages: list[int] = []

    def submit(jobs: list[reprocess.Job]) -> int:
        pages.append(len(jobs))
        return reprocess_cli.directly(new)(jobs)

    progress = reprocess_cli.run(new, store, submit, batch_size=3, cursor_file=tmp_path / "cursor.json", report=lines.append)
    assert progress.done and progress.submitted == 6 and progress.skipped == 1 and progress.failed == 0
    assert max(pages) <= 3 and progress.batches == 3
    assert all(record_of(new, k)["profile_version"] == CLASSIC.version for k in keys)
    assert all(record_of(new, k)["profile"] == "classic" for k in keys)
    # Old-profile files are gone, new ones exist: the catalog matches the bucket.
    assert_catalog_matches_bucket(new)
    assert all(
        k.endswith(("_compressed.jpg", "_low_quality.jpg", "_converted.webp", "_converted.png", "_thumbnail.jpg"))
        for k in store.keys("out")
    )
    assert "batch 3" in lines[-1] and "done" in lines[-1]
    # A second run has nothing to do.
    again = reprocess_cli.run(new, store, submit, batch_size=3, cursor_file=tmp_path / "other.json")
    assert again.submitted == 0 and again.skipped == 7


def test_reprocess_resumes_from_its_cursor(tmp_path: Path) -> None:
    store, catalog = MemoryObjectStore(), MemoryCatalog()
    keys = seed(make_pipeline(WEB, store=store, catalog=catalog), 5)
    new = make_pipeline(CLASSIC, store=store, catalog=catalog)
    cursor = tmp_path / "cursor.json"
    queue = reprocess_cli.MemoryWorkQueue()
    first = reprocess_cli.run(new, store, reprocess_cli.enqueue(queue), batch_size=2, max_batches=1, cursor_file=cursor)
    assert not first.done and first.cursor == keys[1]
    assert json.loads(cursor.read_text())["cursor"] == keys[1]
    second = reprocess_cli.run(new, store, reprocess_cli.enqueue(queue), batch_size=2, cursor_file=cursor)
    assert second.done and second.submitted == 5
    assert sorted(reprocess.Job.from_body(b).key for b in queue.bodies) == keys  # each exactly once
    # The messages, handled (twice: SQS is at-least-once), bring every record up to date once.
    outcomes = reprocess.handle_messages(new, queue.bodies + queue.bodies[:2])
    assert [o.status for o in outcomes].count("processed") == 5
    assert [o.status for o in outcomes].count("ignored") == 2
    assert reprocess_cli.run(new, store, reprocess_cli.enqueue(queue), cursor_file=cursor).done  # finished runs stay finished


def test_reprocess_never_overrides_a_newer_upload() -> None:
    store, catalog = MemoryObjectStore(), MemoryCatalog()
    upload(make_pipeline(WEB, store=store, catalog=catalog), KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="05")
    new = make_pipeline(CLASSIC, store=store, catalog=catalog)
    job = reprocess.Job("up", KEY, CLASSIC.version)
    upload(new, KEY, fixture_bytes("orient_landscape_6.jpg"), sequencer="09")  # the real event for an overwrite
    assert reprocess.reprocess_one(new, job).status == "ignored"  # already current
    assert record_of(new)["sequencer"].endswith("09")


def test_reprocess_handler_drops_garbage_and_retries_failures(capsys: pytest.CaptureFixture[str]) -> None:
    class BrokenCatalog(MemoryCatalog):
        def get(self, image_id: str) -> Any:
            raise ConnectionError("DynamoDB unavailable")

    p = make_pipeline()
    # "[" * 100_000 (SQS takes 256 KB): json.loads raises RecursionError, not ValueError
    assert reprocess.handle_messages(p, ["not json", json.dumps({"bucket": "up"}), "[" * 100_000]) == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["reprocess.invalid"] * 3
    assert all(line["error_code"] == "malformed_event" and line["EventsMalformed"] == 1 for line in lines)  # counted, alarmed
    broken = make_pipeline(catalog=BrokenCatalog())
    with pytest.raises(ConnectionError):
        reprocess.handle_messages(broken, [reprocess.Job("up", KEY, "v").body()])


def test_stage_settings_for_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.settings import Settings
    from tests.conftest import ROOT

    monkeypatch.delenv("REPROCESS_QUEUE", raising=False)
    assert Settings.for_stage("prod", ROOT / ".chalice" / "config.json").reprocess_queue == "image-pipeline-prod-reprocess"
    monkeypatch.setenv("REPROCESS_QUEUE", "override-q")
    assert Settings.for_stage("prod", ROOT / ".chalice" / "config.json").reprocess_queue == "override-q"
