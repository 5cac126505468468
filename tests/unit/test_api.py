"""The API layer with in-memory adapters: URLs, srcset, keys, cursors, conflicts, settings."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import api, health
from chalicelib.catalog import MemoryCatalog
from chalicelib.keys import image_id_for
from chalicelib.links import FakeLinks
from chalicelib.presets import load_profile
from chalicelib.probe import FakeProbe
from chalicelib.records import ImageRecord
from chalicelib.settings import Settings, SettingsError
from chalicelib.storage import MemoryObjectStore

BASE = {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "cat", "EVENTS_TOPIC": "events"}


def make_api(**env: str) -> api.Api:
    settings = Settings.from_env({**BASE, **env})
    return api.Api(settings, load_profile(settings.presets), MemoryCatalog(), MemoryObjectStore(), FakeLinks(), FakeProbe())


def record(n: int, **extra: Any) -> ImageRecord:
    key = f"uploads/{n}.jpg"
    return ImageRecord.from_dict(
        {
            "image_id": image_id_for(key),
            "source_key": key,
            "status": "processed",
            "listing": "images",
            "updated_at": f"2026-01-01T00:00:{n:02d}.000+00:00",
            "renditions": [
                {
                    "preset": "thumbnail",
                    "key": f"renditions/{n}.jpg/thumbnail.jpg",
                    "format": "JPEG",
                    "width": 150,
                    "height": 150,
                    "bytes": 10,
                },
                {
                    "preset": "w1024_webp",
                    "key": f"renditions/{n}.jpg/w1024.webp",
                    "format": "WEBP",
                    "width": 1024,
                    "height": 768,
                    "bytes": 30,
                },
                {"preset": "w320_webp", "key": f"renditions/{n}.jpg/w320.webp", "format": "WEBP", "width": 320, "height": 240, "bytes": 20},
            ],
            **extra,
        }
    )


def test_cdn_domain_replaces_presigned_urls() -> None:
    a = make_api(CDN_DOMAIN="https://img.example.com/")
    a.catalog.put(record(1, source_key="uploads/my photo.jpg"))
    body = api.get_image(a, record(1).image_id).body
    urls = [r["url"] for r in body["renditions"]]
    assert urls[0] == "https://img.example.com/renditions/1.jpg/thumbnail.jpg"
    assert body["srcset"] == {
        "webp": "https://img.example.com/renditions/1.jpg/w320.webp 320w, https://img.example.com/renditions/1.jpg/w1024.webp 1024w"
    }


def test_without_cdn_urls_are_presigned_with_the_configured_expiry() -> None:
    a = make_api(PRESIGN_EXPIRY_SECONDS="60")
    a.catalog.put(record(1))
    body = api.get_image(a, record(1).image_id).body
    assert body["renditions"][0]["url"] == "https://s3.test/out/renditions/1.jpg/thumbnail.jpg?expires=60"


def test_srcset_keeps_one_url_per_width_and_drops_cover_crops() -> None:
    profile = load_profile("classic")  # compressed and low_quality are both full-size JPEGs
    renditions = [
        {"preset": "compressed", "format": "JPEG", "width": 800, "url": "a"},
        {"preset": "low_quality", "format": "JPEG", "width": 800, "url": "b"},
        {"preset": "thumbnail", "format": "JPEG", "width": 150, "url": "c"},
    ]
    assert api.srcsets(profile, renditions) == {"jpeg": "c 150w, a 800w"}  # classic's thumbnail is `within`, not a crop
    web = load_profile("web")
    assert api.srcsets(web, [{"preset": "thumbnail", "format": "JPEG", "width": 150, "url": "t"}]) == {}


def test_delete_conflicts_when_the_record_changed_meanwhile() -> None:
    a = make_api()
    a.catalog.put(record(1))
    stale = record(1)
    newer = record(1, updated_at="2026-01-02T00:00:00.000+00:00")

    class RacingCatalog(MemoryCatalog):
        def get(self, image_id: str) -> ImageRecord | None:
            self.items[image_id] = newer.to_dict()  # reprocessed right after we read it
            return stale

    racing = RacingCatalog()
    a = dataclasses.replace(a, catalog=racing)
    with pytest.raises(api.ApiError) as info:
        api.delete_image(a, stale.image_id, {})
    assert info.value.status == 409 and info.value.code == "conflict"
    assert racing.get(stale.image_id)  # the newer record survived


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_0001.JPG", "IMG_0001.JPG"),
        ("C:\\Users\\me\\Desktop\\holiday.png", "holiday.png"),
        ("../../etc/passwd", "passwd"),
        (".hidden.jpg", "hidden.jpg"),
        ("my photo (1).jpeg", "my-photo-1-.jpeg"),
        ("写真.jpg", "写真.jpg"),
        ("\x00\x01", "image"),
        ("★.jpg", "image.jpg"),
        (".png", "image.png"),
        ("---", "image"),
        ("a" * 300 + ".webp", "a" * 95 + ".webp"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert api.safe_filename(name) == expected


@given(st.text(min_size=1, max_size=300))
def test_upload_keys_are_always_clean_and_under_the_prefix(name: str) -> None:
    key = api.upload_key("uploads/", name, datetime(2026, 3, 4, tzinfo=UTC), "f" * 32)
    assert key.startswith("uploads/2026-03-04/" + "f" * 32 + "-")
    tail = key.rsplit("/", 1)[1]
    assert len(tail) <= 33 + 100 and ".." not in tail.split("-", 1)[1][:2]
    assert all(ch.isprintable() and ch not in "/\\ " for ch in tail)


@given(st.integers(min_value=0, max_value=59), st.sampled_from([None, "processed", "rejected", "failed"]))
def test_cursor_round_trip(second: int, status: str | None) -> None:
    last = {"image_id": "a" * 32, "updated_at": f"2026-01-01T00:00:{second:02d}.000+00:00"}
    after = api.decode_cursor(api.encode_cursor(last, status), status)
    assert after is not None and after["image_id"] == last["image_id"] and after["updated_at"] == last["updated_at"]


def test_memory_catalog_pages_like_dynamodb() -> None:
    a = make_api()
    for n in range(5):
        a.catalog.put(record(n, status="rejected" if n % 2 else "processed"))
    first = api.list_images(a, {"limit": "2"}).body
    second = api.list_images(a, {"limit": "2", "next": first["next"]}).body
    third = api.list_images(a, {"limit": "2", "next": second["next"]}).body
    ids = [i["image_id"] for page in (first, second, third) for i in page["items"]]
    assert ids == [record(n).image_id for n in (4, 3, 2, 1, 0)] and third["next"] is None
    rejected = api.list_images(a, {"status": "rejected"}).body["items"]
    assert [i["image_id"] for i in rejected] == [record(3).image_id, record(1).image_id]
    a.catalog.put(record(9, status="deleted", renditions=[]))  # a tombstone: listed only on request
    assert record(9).image_id not in [i["image_id"] for i in api.list_images(a, {}).body["items"]]
    assert [i["image_id"] for i in api.list_images(a, {"status": "deleted"}).body["items"]] == [record(9).image_id]


def test_health_degrades_when_a_resource_is_unreachable() -> None:
    a = dataclasses.replace(make_api(), probe=FakeProbe({"cat": "ResourceNotFoundException: no table"}))
    reply = health.details(a)
    assert reply.status == 503
    assert reply.body["checks"]["catalog_table"] == {"ok": False, "error": "ResourceNotFoundException: no table"}
    terse = health.status(a)
    assert (terse.status, terse.body) == (503, {"status": "degraded"})


def test_debug_traceback_only_when_asked() -> None:
    def boom() -> api.Reply:
        raise ValueError("kaboom")

    assert "traceback" not in api.run(boom).body["error"]
    assert "ValueError: kaboom" in api.run(boom, debug=True).body["error"]["traceback"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WRITE_AUTH": "password"}, "WRITE_AUTH"),
        ({"CDN_DOMAIN": "cdn.example.com/path"}, "CDN_DOMAIN"),
        ({"PRESIGN_EXPIRY_SECONDS": "604801"}, "PRESIGN_EXPIRY_SECONDS"),
        ({"PRESIGN_EXPIRY_SECONDS": "0"}, "PRESIGN_EXPIRY_SECONDS"),
        ({"API_DEBUG": "true"}, "API_DEBUG"),
    ],
)
def test_api_settings_are_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, **env})


def test_api_settings_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.write_auth, settings.cdn_domain, settings.presign_expiry, settings.api_debug) == ("none", None, 120, False)
    local = Settings.from_env({**BASE, "API_DEBUG": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "WRITE_AUTH": "IAM"})
    assert local.api_debug and local.write_auth == "iam"


@pytest.mark.parametrize(("query", "field"), [({"limit": "²"}, "limit"), ({"limit": "٣"}, "limit"), ({"next": "abc\n"}, "next")])
def test_odd_characters_are_400s_not_500s(query: dict[str, str], field: str) -> None:
    with pytest.raises(api.ApiError) as info:
        api.list_images(make_api(), query)
    assert (info.value.status, info.value.field) == (400, field)


def test_an_id_with_a_trailing_newline_is_malformed() -> None:
    with pytest.raises(api.ApiError) as info:
        api.get_image(make_api(), "a" * 32 + "\n")
    assert (info.value.status, info.value.field) == (400, "image_id")
