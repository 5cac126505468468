"""DELETE /images/{id} with in-memory adapters: tombstone first, a half-done delete can be
repeated, the CDN is told, and other buckets' objects are never touched."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib import api, keys
from chalicelib.cdn import MemoryCdn, paths_for
from chalicelib.links import FakeLinks
from chalicelib.probe import FakeProbe
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import SETTINGS, make_pipeline, upload

KEY = "uploads/party/me & you.jpg"


class Flaky(MemoryObjectStore):
    failures = 0

    def delete(self, bucket: str, keys: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 unavailable")
        super().delete(bucket, keys)


def test_a_half_done_delete_can_be_repeated_and_the_cdn_forgets_the_paths() -> None:
    store = Flaky()
    p = make_pipeline(store=store)
    rendered = {r.key for r in upload(p, KEY, fixture_bytes("orient_landscape_1.jpg")).renditions}
    cdn = MemoryCdn()
    context = api.Api(SETTINGS, p.profile, p.catalog, store, FakeLinks(), FakeProbe(), cdn=cdn)
    image_id = keys.image_id_for(KEY)
    store.failures = 1
    with pytest.raises(ConnectionError):
        api.delete_image(context, image_id, {})
    half = p.catalog.get(image_id)
    assert half is not None and half.status == "deleted" and set(half.removing or ()) == rendered  # readers see no renditions
    reply = api.delete_image(context, image_id, {})  # the client retries
    assert reply.body["deleted"] == {"record": True, "renditions": len(rendered), "source": True, "cdn_invalidated": True}
    done = p.catalog.get(image_id)
    assert done is not None and done.status == "deleted" and not done.removing
    assert store.keys("out") == [] and store.keys("up") == []
    assert cdn.invalidations == [paths_for(rendered)]
    assert all(path.startswith("/renditions/party/me%20%26%20you.jpg/") for path in cdn.invalidations[0])
    with pytest.raises(api.ApiError) as info:
        api.get_image(context, image_id)
    assert info.value.status == 404


def test_a_source_recorded_in_another_bucket_is_not_deleted() -> None:
    store = MemoryObjectStore()
    p = make_pipeline(store=store)
    upload(p, KEY, fixture_bytes("orient_landscape_1.jpg"))
    record = p.catalog.get(keys.image_id_for(KEY))
    assert record is not None
    p.catalog.put(replace(record, source_bucket="someone-elses"))
    store.add("someone-elses", KEY, b"theirs")
    context = api.Api(SETTINGS, p.profile, p.catalog, store, FakeLinks(), FakeProbe())
    assert api.delete_image(context, record.image_id, {}).body["deleted"]["source"] is False
    assert store.keys("someone-elses") == [KEY]
