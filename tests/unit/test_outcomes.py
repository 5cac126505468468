"""announce: every outcome is recorded, tagged, published and logged in that order, by one
function, and a record a newer event already wrote stops it before anything else happens."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.outcomes import Notice, announce, ignored
from chalicelib.records import ImageRecord
from chalicelib.storage import MemoryObjectStore
from tests.support.wiring import make_pipeline

KEY = "uploads/cat.jpg"


def notice(**extra: Any) -> Notice:
    fields = {"image_id": "i1", "source_key": KEY, "status": "processed"}
    return Notice(
        "image.processed",
        fields,
        "Processed cat.jpg",
        published={"renditions_bytes": 10},
        logged={"key": KEY},
        metrics={"ImagesProcessed": (1, "Count")},
        **extra,
    )


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_announce_records_then_tags_publishes_and_logs(capsys: pytest.CaptureFixture[str]) -> None:
    p = make_pipeline()
    assert isinstance(p.store, MemoryObjectStore) and isinstance(p.notifier, MemoryNotifier)
    source = p.store.add("up", KEY, b"jpeg")
    seen: list[str] = []
    record = ImageRecord("i1", sequencer="05", status="processed")
    timings: dict[str, float] = {}
    capsys.readouterr()

    def then() -> None:
        seen.append("then: recorded" if p.catalog.get("i1") == record else "then: not recorded")
        timings["record_ms"] = 1.0  # timings are read when the line is written

    assert announce(p, notice(started=time.perf_counter(), timings=timings, processing_time=True), record=record, then=then, tag=source)
    assert seen == ["then: recorded"]
    assert p.store.buckets["up"][KEY].tags == {"pipeline-status": "processed", "processed-at": "2026-01-02T03:04:05.000Z"}
    [sent] = p.notifier.messages
    assert sent.subject == "Processed cat.jpg" and sent.attributes == {"event_type": "image.processed", "status": "processed"}
    assert json.loads(sent.message) == {
        "type": "image.processed",
        "image_id": "i1",
        "source_key": KEY,
        "status": "processed",
        "renditions_bytes": 10,
        "occurred_at": "2026-01-02T03:04:05.000+00:00",
    }
    [line] = lines(capsys.readouterr().out)
    assert line["event"] == "image.processed" and line["key"] == KEY and "renditions_bytes" not in line
    assert line["record_ms"] == 1.0 and line["duration_ms"] >= 0
    assert line["ImagesProcessed"] == 1 and line["ProcessingTime"] == line["duration_ms"]


def test_a_newer_record_stops_the_announcement(capsys: pytest.CaptureFixture[str]) -> None:
    catalog = MemoryCatalog()
    p = make_pipeline(catalog=catalog)
    assert isinstance(p.store, MemoryObjectStore) and isinstance(p.notifier, MemoryNotifier)
    source = p.store.add("up", KEY, b"jpeg")
    assert catalog.put(ImageRecord("i1", sequencer="09", status="processed"))
    capsys.readouterr()
    ran: list[bool] = []
    assert not announce(p, notice(), record=ImageRecord("i1", sequencer="05"), then=lambda: ran.append(True), tag=source)
    assert ran == [] and p.store.buckets["up"][KEY].tags == {} and p.notifier.messages == []
    assert lines(capsys.readouterr().out) == []
    assert (catalog.get("i1") or ImageRecord("")).sequencer == "09"


def test_a_failed_publish_is_counted_and_the_outcome_still_logged(capsys: pytest.CaptureFixture[str]) -> None:
    class DeadNotifier(MemoryNotifier):
        def publish(self, *a: Any, **kw: Any) -> str:
            raise ConnectionError("SNS is down")

    p = make_pipeline(notifier=DeadNotifier())
    capsys.readouterr()
    assert announce(p, notice())
    failed, outcome = lines(capsys.readouterr().out)
    assert failed["event"] == "publish.failed" and failed["PublishFailures"] == 1 and "SNS is down" in failed["error"]
    assert outcome["event"] == "image.processed" and "duration_ms" not in outcome  # not timed: no started


def test_ignored_is_only_logged(capsys: pytest.CaptureFixture[str]) -> None:
    p = make_pipeline()
    assert isinstance(p.notifier, MemoryNotifier)
    capsys.readouterr()
    outcome = ignored(p, Upload("up", KEY), "folder marker", "i1")
    assert (outcome.status, outcome.reason, outcome.image_id) == ("ignored", "folder marker", "i1")
    assert p.notifier.messages == [] and p.catalog.get("i1") is None
    [line] = lines(capsys.readouterr().out)
    assert line["event"] == "image.ignored" and line["reason"] == "folder marker" and line["key"] == KEY
    assert "error_code" not in line and "EventsMalformed" not in line
