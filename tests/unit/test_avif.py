"""AVIF renditions: a preset format like the others, encoder options as data, in the web
profile at the ladder widths, smaller than WebP at the same SSIM-matched quality."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chalicelib.imaging import codec
from chalicelib.presets import FORMATS, WEB, Preset, PresetError, Profile
from tests.conftest import fixture_bytes
from tests.support import hostile
from tests.support.imagetools import mean_abs_diff, metadata_markers, open_bytes, render_all


def test_avif_is_a_preset_format() -> None:
    preset = Preset.from_dict({"name": "small", "format": "avif", "width": 320, "quality": 50, "options": {"speed": 8}})
    assert (preset.format, preset.extension, preset.content_type) == ("AVIF", "avif", "image/avif")
    assert preset.output_filename("x") == "small.avif"
    assert FORMATS["AVIF"] == ("avif", "image/avif")
    with pytest.raises(PresetError):
        Preset("bad", "AVIF", quality=0)


def test_web_profile_has_avif_at_the_ladder_widths() -> None:
    avif = [p for p in WEB.presets if p.format == "AVIF"]
    webp = {p.width for p in WEB.presets if p.format == "WEBP" and not p.animated}
    assert avif and {p.width for p in avif} <= webp
    for preset in avif:
        assert preset.filename == f"w{preset.width}.avif"
        assert {"speed"} <= set(preset.options)  # encoder options are data, with the quality


def test_avif_renditions_decode_upright_in_srgb_without_metadata() -> None:
    data = fixture_bytes("orient_landscape_6.jpg")  # EXIF orientation 6, with EXIF to strip
    upright = open_bytes(fixture_bytes("orient_landscape_1.jpg"))
    profile = Profile("a", (Preset("a", "AVIF", width=320, quality=60, options={"speed": 8}),))
    [rendition] = render_all(data, profile).renditions
    assert rendition.content_type == "image/avif" and rendition.filename == "a.avif"
    image = open_bytes(rendition.data)
    assert image.format == "AVIF" and image.size == (rendition.width, rendition.height) == (320, 240)
    assert mean_abs_diff(image, upright) < 9  # the JPEG rendition is 7.2 off too: the fixtures are separate JPEGs
    assert mean_abs_diff(image, upright.transpose(Image.Transpose.ROTATE_180)) > 40
    assert metadata_markers(rendition.data) == []
    assert metadata_markers(codec.encode(_with_metadata(), "AVIF", 60, {"speed": 10})) == []


def _with_metadata() -> Image.Image:
    image = hostile.photo()
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    image.info.update(exif=exif.tobytes(), xmp=b"<x:xmpmeta/>", icc_profile=hostile.rgb_icc_profile("Display P3 compatible"))
    return image


def test_avif_of_a_wide_gamut_photo_is_converted_to_srgb() -> None:
    icc = hostile.rgb_icc_profile("Display P3 compatible")
    source = hostile.save(Image.new("RGB", (400, 300), (200, 30, 30)), "PNG", icc_profile=icc)
    profile = Profile("a", (Preset("a", "AVIF", width=320, quality=90, options={"speed": 8}), Preset("p", "PNG", width=320)))
    avif, png = (open_bytes(r.data).convert("RGB") for r in render_all(source, profile).renditions)
    assert mean_abs_diff(avif, png) < 3  # the same sRGB colours as the PNG rendition


def test_web_avif_is_smaller_than_webp_at_each_width(corpus: object) -> None:
    """The point of AVIF: at the quality chosen to match WebP's SSIM, fewer bytes."""
    from tests.conftest import CORPUS

    photo = sorted(CORPUS.glob("photo_*.jpg"))[0].read_bytes()
    result = render_all(photo, WEB)
    by_preset = {r.preset: r for r in result.renditions}
    for preset in (p for p in WEB.presets if p.format == "AVIF"):
        avif = by_preset[preset.name]
        webp = by_preset[f"w{preset.width}_webp"]
        assert avif.size < webp.size, (preset.name, avif.size, webp.size)
        assert Image.open(io.BytesIO(avif.data)).size == (webp.width, webp.height)
