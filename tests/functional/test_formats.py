"""End to end through the app's handlers under moto: an iPhone HEIC named .jpg and an animated
GIF are uploaded with the API's form, processed by the `process_upload` handler, and read back
with GET /images/{id}: the record, the renditions in the bucket and their Content-Types."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.conftest import fixture_bytes
from tests.functional.test_api import aws, call, client, shared_client, stack, upload_and_process  # noqa: F401 - fixtures
from tests.support import formats

CONTENT_TYPES = {"JPEG": "image/jpeg", "WEBP": "image/webp", "AVIF": "image/avif"}


def stored(aws: dict[str, Any], key: str) -> tuple[str, bytes]:  # noqa: F811 - a parameter named like the fixture
    answer = aws["s3"].get_object(Bucket=aws["env"]["PROCESSED_BUCKET"], Key=key)
    return answer["ContentType"], answer["Body"].read()


def test_heic_named_jpg_is_processed_as_heif_upright_with_avif_renditions(aws: dict[str, Any], client: Any) -> None:  # noqa: F811
    upright = Image.open(io.BytesIO(fixture_bytes("orient_landscape_1.jpg"))).convert("RGB")
    data = formats.phone_heic(upright, 6)  # sideways pixels + irot + EXIF orientation 6
    ticket = upload_and_process(aws, client, "IMG_0001.jpg", data, "image/jpeg")
    status, image = call(client, "GET", f"/images/{ticket['image_id']}")
    assert status == 200 and image["status"] == "processed", image
    assert (image["format"], image["width"], image["height"]) == ("HEIF", 600, 450)
    assert image["camera"]["make"] == "Apple"
    presets = {r["preset"]: r for r in image["renditions"]}
    assert set(presets) == {"thumbnail", "w320_jpeg", "w320_webp", "w320_avif"}
    for rendition in image["renditions"]:
        content_type, body = stored(aws, rendition["key"])
        assert content_type == CONTENT_TYPES[rendition["format"]]
        decoded = Image.open(io.BytesIO(body))
        assert decoded.size == (rendition["width"], rendition["height"]) and "animated" not in rendition
    assert list(image["srcset"]) == ["avif", "webp", "jpeg"]
    assert image["picture"].startswith('<picture><source type="image/avif"') and 'width="320" height="240"' in image["picture"]


def test_animated_gif_keeps_moving(aws: dict[str, Any], client: Any) -> None:  # noqa: F811
    data = fixture_bytes("animated_loop3.gif")  # 10 frames, 370x285, plays 3 times
    ticket = upload_and_process(aws, client, "party.gif", data, "image/gif")
    status, image = call(client, "GET", f"/images/{ticket['image_id']}")
    assert status == 200 and image["status"] == "processed", image
    assert (image["format"], image["frames"]) == ("GIF", 10)
    moving = {r["preset"]: r for r in image["renditions"] if r.get("animated")}
    assert {name: (r["width"], r["frames"]) for name, r in moving.items()} == {"w320_animated": (320, 10), "w1024_animated": (370, 10)}
    for rendition in image["renditions"]:
        content_type, body = stored(aws, rendition["key"])
        assert content_type == CONTENT_TYPES[rendition["format"]]
        frames = getattr(Image.open(io.BytesIO(body)), "n_frames", 1)
        assert frames == (10 if rendition.get("animated") else 1), rendition["preset"]
    webp = Image.open(io.BytesIO(stored(aws, moving["w320_animated"]["key"])[1]))
    assert webp.info["loop"] == 3
    assert next(iter(image["srcset"])) == "webp_animated"
    assert '<source type="image/webp" srcset="' in image["picture"] and "image/avif" not in image["picture"]


def test_heic_content_type_is_accepted_for_upload(aws: dict[str, Any], client: Any) -> None:  # noqa: F811
    status, ticket = call(client, "POST", "/uploads", {"filename": "IMG_0002.HEIC", "content_type": "image/heic", "size": 1000})
    assert status == 201, ticket
