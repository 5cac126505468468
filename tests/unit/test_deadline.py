"""The processing deadline: an image that cannot finish before Lambda's limit is recorded
(and announced) while there is still time. Before: no record at all, the gallery waited forever.

No timing is asserted: the slow step blocks on an event until the test releases it, so the
deadline (a fake Lambda context with little time left) always passes first."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from chalicelib import processing, reprocess
from chalicelib.deadline import Deadline, OutOfTime
from chalicelib.imaging import render
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import SETTINGS, make_pipeline, stored_record

KEY = "uploads/slow.jpg"
FAST = replace(SETTINGS, deadline_margin_ms=100)


class FakeContext:
    """What Lambda passes handlers: only the remaining time matters here."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of each test: blocked workers finish, and are joined."""
    gate = threading.Event()
    yield gate
    gate.set()
    for thread in threading.enumerate():
        if thread.name.startswith("attempt-"):
            thread.join(30)


def deadline(remaining_ms: int = 2_000) -> Deadline:
    found = Deadline.from_context(FakeContext(remaining_ms), FAST.deadline_margin_ms)
    assert found is not None
    return found


def events(p: Any) -> list[dict[str, Any]]:
    assert isinstance(p.notifier, MemoryNotifier)
    return [json.loads(m.message) for m in p.notifier.messages]


def test_the_margin_is_ten_seconds_or_ten_percent_and_short_limits_have_no_deadline() -> None:
    assert Deadline.from_context(None, 10_000) is None
    assert Deadline.from_context(FakeContext(3_000), 10_000) is None  # chalice's test client: 3 s
    sixty = Deadline.from_context(FakeContext(60_000), 10_000)
    assert sixty is not None and 49 < sixty.remaining() <= 50 and sixty.limit == 60
    nine_hundred = Deadline.from_context(FakeContext(900_000), 10_000)
    assert nine_hundred is not None and 809 < nine_hundred.remaining() <= 810  # 10% of 900 s


def test_an_image_that_cannot_render_in_time_is_rejected_too_complex_before_the_limit(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    real_render = render.render

    def slow_render(*args: Any, **kw: Any) -> Any:
        release.wait(30)  # the 16 s decode of a scan bomb, as far as the clock can tell
        return real_render(*args, **kw)

    monkeypatch.setattr(render, "render", slow_render)
    p = make_pipeline(settings=FAST)
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"))
    outcome = processing.handle_upload(p, Upload("up", KEY, sequencer="0A"), deadline())
    assert outcome.status == "rejected"
    record = stored_record(p, KEY)
    assert record is not None and record["status"] == "rejected" and record["error_code"] == "too_complex"
    assert [(e["type"], e["error_code"]) for e in events(p)] == [("image.rejected", "too_complex")]
    assert store.buckets["up"][KEY].tags["pipeline-status"] == "rejected"
    # The abandoned render finishes later (a thawed container): it writes nothing.
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("attempt-"):
            thread.join(30)
    assert stored_record(p, KEY) == record
    assert store.keys("out") == []
    assert len(events(p)) == 1


def test_time_lost_in_our_own_reads_is_a_failure_and_retried(release: threading.Event) -> None:
    class StuckStore(MemoryObjectStore):
        def get(self, source: Any) -> bytes:
            release.wait(30)  # S3 not answering
            return super().get(source)

    p = make_pipeline(settings=FAST, store=StuckStore())
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"))
    with pytest.raises(TimeoutError):
        processing.handle_upload(p, Upload("up", KEY, sequencer="0A"), deadline())
    record = stored_record(p, KEY)
    assert record is not None and record["status"] == "failed" and record["error_code"] == "internal_error"
    assert [e["type"] for e in events(p)] == ["image.failed"]


def test_an_image_finishing_in_time_is_processed_as_usual() -> None:
    p = make_pipeline(settings=FAST)
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"))
    roomy = Deadline.from_context(FakeContext(600_000), FAST.deadline_margin_ms)
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="0A"), roomy).status == "processed"


def test_a_batch_out_of_time_leaves_the_rest_for_redelivery() -> None:
    p = make_pipeline(settings=FAST)
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"))
    spent = Deadline(at=0.0, grace=0.0, limit=60.0)  # earlier messages used the time up
    with pytest.raises(OutOfTime):
        reprocess.handle_messages(p, [reprocess.Job("up", KEY, "old").body()], spent)
    assert stored_record(p, KEY) is None  # nothing recorded: the message comes back
