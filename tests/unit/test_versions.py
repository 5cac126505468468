"""Versioned rendition keys with in-memory adapters: new version -> new keys, no orphans on
any path (switch, failure, rejection)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib import keys, processing
from chalicelib.adapters import Adapters
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.presets import WEB
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline, upload

KEY = "uploads/avatar.jpg"


def store_of(p: Adapters) -> MemoryObjectStore:
    assert isinstance(p.store, MemoryObjectStore)
    return p.store


def listed(p: Adapters) -> set[str]:
    record = p.catalog.get(keys.image_id_for(KEY))
    return record.rendition_keys if record else set()


def test_reupload_switches_to_new_keys_and_removes_the_old_ones() -> None:
    p = make_pipeline()
    first = {r.key for r in upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01").renditions}
    second = {r.key for r in upload(p, KEY, fixture_bytes("orient_landscape_6.jpg"), sequencer="02").renditions}
    assert first and second and not first & second
    assert set(store_of(p).keys("out")) == second == listed(p)


def test_a_new_profile_version_gets_new_keys_for_the_same_source() -> None:
    store, catalog = MemoryObjectStore(), MemoryCatalog()
    old = make_pipeline(WEB, store=store, catalog=catalog)
    first = {r.key for r in upload(old, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01").renditions}
    tuned = replace(WEB, presets=tuple(replace(p, quality=p.quality - 1) for p in WEB.presets))
    assert tuned.version != WEB.version
    new = make_pipeline(tuned, store=store, catalog=catalog)
    record = catalog.get(keys.image_id_for(KEY))
    assert record is not None
    again = processing.handle_upload(new, Upload("up", KEY, "Pipeline:Reprocess", record.sequencer))
    second = {r.key for r in again.renditions}
    assert again.status == "processed" and not first & second
    assert {k.rsplit("/", 1)[-1] for k in first} == {k.rsplit("/", 1)[-1] for k in second}  # same names, new folder
    assert set(store.keys("out")) == second


def test_a_failed_write_of_a_reupload_keeps_serving_the_old_set_and_leaves_no_orphans() -> None:
    class FailsSecondVersion(MemoryObjectStore):
        fail = False

        def put(self, bucket: str, key: str, data: bytes, **kw: Any) -> None:
            if self.fail and key.endswith(".webp"):
                raise ConnectionError("S3 unavailable")
            super().put(bucket, key, data, **kw)

    store = FailsSecondVersion()
    p = make_pipeline(store=store)
    first = {r.key for r in upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01").renditions}
    store.fail = True
    with pytest.raises(ConnectionError):
        upload(p, KEY, fixture_bytes("orient_landscape_6.jpg"), sequencer="02")
    assert set(store.keys("out")) == first == listed(p)


def test_a_rejected_reupload_removes_the_earlier_renditions() -> None:
    p = make_pipeline()
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"), sequencer="01")
    assert upload(p, KEY, b"not an image", sequencer="02").status == "rejected"
    assert store_of(p).keys("out") == [] and listed(p) == set()
