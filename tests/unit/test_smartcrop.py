"""Smart crop: the `cover` window follows the subject, and presets choose it per thumbnail."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageStat

from chalicelib.imaging import smartcrop, steps
from chalicelib.presets import CLASSIC, WEB, Preset, PresetError, Profile, load_profile
from tests.support.imagetools import open_bytes, render_all

GREY = (120, 120, 120)


def noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))


def subject_at(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A flat grey picture whose only detail is a patch of noise at `box`."""
    image = Image.new("RGB", size, GREY)
    size = (box[2] - box[0], box[3] - box[1])
    # Blocks of 10 px: detail that survives the downscale to a thumbnail (fine noise averages to grey).
    image.paste(noise((max(1, size[0] // 10), max(1, size[1] // 10))).resize(size, Image.Resampling.NEAREST), box[:2])
    return image


def portrait_with_face_on_top() -> Image.Image:
    image = Image.new("RGB", (300, 900), (90, 110, 140))  # a plain wall
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 40, 210, 190), fill=(224, 172, 140))  # face
    for eye in (125, 160):
        draw.ellipse((eye, 90, eye + 15, 105), fill=(40, 30, 30))
    draw.arc((120, 130, 180, 165), 20, 160, fill=(150, 60, 60), width=4)
    return image


def detail(image: Image.Image) -> float:
    return float(sum(ImageStat.Stat(image.convert("L")).stddev))


@pytest.mark.parametrize("side", ["left", "right"])
def test_wide_image_keeps_the_subject_at_the_far_edge(side: str) -> None:
    box = (10, 20, 80, 130) if side == "left" else (370, 20, 440, 130)
    image = subject_at((450, 150), box)
    thumb = steps.cover(image, (150, 150), "smart")
    assert thumb.size == (150, 150)
    assert detail(thumb) > 15  # the noise patch is in the thumbnail
    assert detail(steps.cover(image, (150, 150))) < 1  # the centre crop is flat grey
    expected = 0.0 if side == "left" else 1.0
    assert smartcrop.centering(image, (150, 150))[0] == pytest.approx(expected, abs=0.1)


def test_tall_portrait_keeps_the_face_at_the_top() -> None:
    image = portrait_with_face_on_top()
    assert smartcrop.centering(image, (100, 100))[1] < 0.1
    thumb = steps.cover(image.resize((150, 450)), (150, 150), "smart")

    def face(image: Image.Image) -> int:
        return sum(1 for r, g, _ in image.get_flattened_data() if r > 200 and 150 < g < 190)  # type: ignore[misc]

    assert face(thumb) > 150 * 150 * 0.1
    assert face(steps.cover(image.resize((150, 450)), (150, 150))) == 0  # the centre crop shows the wall


def test_centred_subject_stays_centred() -> None:
    image = subject_at((450, 150), (190, 30, 260, 120))
    assert smartcrop.centering(image, (150, 150)) == pytest.approx((0.5, 0.5), abs=0.03)
    tall = subject_at((150, 450), (40, 190, 110, 260))
    assert smartcrop.centering(tall, (150, 150)) == pytest.approx((0.5, 0.5), abs=0.03)


@pytest.mark.parametrize(
    ("size", "target"),
    [
        ((300, 100), (150, 150)),
        ((1, 1), (1, 1)),
        ((1, 500), (1, 1)),
        ((500, 1), (1, 1)),
        ((2, 3), (2, 2)),
        ((3, 900), (3, 3)),
        ((151, 150), (150, 150)),
    ],
)
def test_flat_tiny_and_one_pixel_images_never_fail(size: tuple[int, int], target: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (10, 200, 30))
    assert smartcrop.centering(image, target) == pytest.approx((0.5, 0.5), abs=0.02)
    assert steps.cover(image, target, "smart").size == target


def test_other_modes_are_scored_too() -> None:
    for mode in ("L", "RGBA", "P", "1"):
        image = subject_at((300, 100), (5, 10, 60, 90)).convert(mode, dither=Image.Dither.NONE)  # dithered grey is all texture
        assert smartcrop.centering(image, (100, 100))[0] < 0.2, mode


def test_web_thumbnail_uses_smart_crop_end_to_end() -> None:
    buffer = io.BytesIO()
    subject_at((1500, 500), (30, 60, 250, 440)).save(buffer, "JPEG", quality=90)
    result = render_all(buffer.getvalue(), WEB)
    thumbnail = next(r for r in result.renditions if r.preset == "thumbnail")
    assert (thumbnail.width, thumbnail.height) == (150, 150)
    assert detail(open_bytes(thumbnail.data)) > 15


def test_presets_accept_crop_as_data(tmp_path: Path) -> None:
    assert next(p for p in WEB.presets if p.name == "thumbnail").crop == "smart"
    assert all(p.crop == "centre" for p in CLASSIC.presets)
    path = tmp_path / "shop.json"
    cover = {"name": "square", "format": "jpeg", "width": 100, "height": 100, "fit": "cover"}
    path.write_text(json.dumps([cover | {"crop": "smart"}, cover | {"name": "plain", "crop": "center", "filename": "p.jpg"}]))
    smart, plain = load_profile(str(path)).presets
    assert (smart.crop, plain.crop) == ("smart", "centre")
    assert smart.as_dict()["crop"] == "smart" and "crop" not in plain.as_dict()
    assert Preset.from_dict(smart.as_dict()) == smart


def test_profile_version_changes_with_the_crop_only_where_it_is_used() -> None:
    a = Profile("p", (Preset("t", "JPEG", width=10, height=10, fit="cover"),))
    b = Profile("p", (Preset("t", "JPEG", width=10, height=10, fit="cover", crop="smart"),))
    assert a.version != b.version


@pytest.mark.parametrize(
    "bad",
    [{"crop": "face"}, {"crop": "smart", "fit": "within"}, {"crop": 1}],
)
def test_bad_crop_is_a_preset_error(bad: dict[str, object]) -> None:
    with pytest.raises(PresetError, match="crop"):
        Preset.from_dict({"name": "x", "format": "JPEG", "width": 10, "height": 10, "fit": "cover"} | bad)
