"""Single-use upload forms on the in-memory adapters: the nonce is recorded when the form is
issued and claimed by the first object version; retries of that version, reprocess runs and
uploads without a form are never taken for replays."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib import forms, processing
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.reprocess import REPROCESS_EVENT
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline

KEY = "uploads/2026-01-02/cat.jpg"


def test_the_first_version_is_processed_a_replay_ignored_a_retry_and_a_reprocess_not() -> None:
    p = make_pipeline()
    assert isinstance(p.store, MemoryObjectStore) and isinstance(p.catalog, MemoryCatalog)
    meta = forms.issue(p.catalog, datetime(2026, 1, 2, tzinfo=UTC), 120)
    assert list(p.catalog.nonces) == [meta[forms.FORM_NONCE]]

    p.store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"), metadata=meta)
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="0A")).status == "processed"
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="0A")).status == "processed"  # a redelivery

    p.store.add("up", KEY, fixture_bytes("orient_portrait_1.jpg"), metadata=meta)  # the form posted again
    replay = processing.handle_upload(p, Upload("up", KEY, sequencer="0B"))
    assert (replay.status, replay.reason) == ("ignored", forms.REPLAYED)
    record = p.catalog.get(replay.image_id or "")
    assert record is not None and record.width == 600  # still the first upload

    # a reprocess re-renders what is there: not an upload, never a replay
    assert processing.handle_upload(p, Upload("up", KEY, REPROCESS_EVENT, "0B")).status == "processed"


def test_an_unknown_nonce_and_no_nonce_are_processed() -> None:
    """A nonce the catalog no longer holds (expired and removed by the TTL) cannot be replayed
    any more (S3 refuses an expired form); an upload without a form has none."""
    p = make_pipeline()
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", KEY, fixture_bytes("orient_landscape_1.jpg"), metadata={forms.FORM_NONCE: "0" * 32})
    assert processing.handle_upload(p, Upload("up", KEY, sequencer="0A")).status == "processed"
    p.store.add("up", "uploads/b.jpg", fixture_bytes("orient_landscape_1.jpg"))
    assert processing.handle_upload(p, Upload("up", "uploads/b.jpg", sequencer="0A")).status == "processed"
