"""HEIC/HEIF input: real files encoded by pillow-heif, decoded the way Lambda does (pi-heif)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

from chalicelib.imaging import codec, heif, render
from chalicelib.models import ErrorCode, RejectedInput
from chalicelib.presets import WEB, Preset, Profile
from tests.conftest import ROOT, fixture_bytes
from tests.support import formats, hostile
from tests.support.imagetools import LIMITS, mean_abs_diff, open_bytes, render_all

# One lossless output at source size: what was decoded, unchanged by any resize or lossy encoder.
EXACT = Profile("exact", (Preset("full", "PNG", always=True),))


@pytest.fixture(scope="session")
def upright() -> Image.Image:
    return Image.open(io.BytesIO(fixture_bytes("orient_landscape_1.jpg"))).convert("RGB")


@pytest.fixture(scope="session")
def phone_files(upright: Image.Image) -> dict[int, bytes]:
    return {orientation: formats.phone_heic(upright, orientation) for orientation in (3, 6, 8)}


def decoded(data: bytes, profile: Profile = EXACT) -> tuple[render.RenderResult, Image.Image]:
    result = render_all(data, profile)
    return result, open_bytes(result.renditions[0].data)


def test_heic_is_decoded_by_pi_heif_and_recorded_as_heif() -> None:
    data = hostile.case("heic")
    image = codec.open_image(data, LIMITS)
    assert type(image).__module__.startswith("pi_heif")  # not pillow-heif, which tests use to write
    result, out = decoded(data)
    assert result.source.format == "HEIF" and result.source.frames == 1
    assert mean_abs_diff(out, hostile.photo()) < 6  # HEVC at quality 60 on a noisy photo


def test_format_comes_from_the_content_not_the_name() -> None:
    assert codec.sniff_format(hostile.case("heic")) == "HEIF"
    assert codec.sniff_format(hostile.save(hostile.photo(), "JPEG")) == "JPEG"
    # AVIF shares the container and the generic `mif1` brand: it stays with Pillow's plugin.
    avif = bytearray(hostile.save(hostile.photo(), "AVIF"))
    assert codec.sniff_format(bytes(avif)) == "AVIF"
    avif[8:12] = b"mif1"
    assert codec.sniff_format(bytes(avif)) == "AVIF"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_phone_photo_is_upright_exactly_once(orientation: int, phone_files: dict[int, bytes], upright: Image.Image) -> None:
    """Sideways pixels + irot + EXIF orientation: libheif turns them once; a second turn by
    the EXIF tag would give the wrong size (6, 8) or an upside-down photo (3)."""
    result, out = decoded(phone_files[orientation])
    assert (result.source.width, result.source.height) == upright.size == out.size
    assert mean_abs_diff(out, upright) < 4
    assert mean_abs_diff(out, upright.transpose(Image.Transpose.ROTATE_180)) > 20
    assert result.source.camera.make == "Apple"


def test_phone_photo_renditions_are_upright_in_the_web_profile(phone_files: dict[int, bytes], upright: Image.Image) -> None:
    result = render_all(phone_files[6], WEB)
    w320 = next(r for r in result.renditions if r.preset == "w320_jpeg")
    assert (w320.width, w320.height) == (320, 240)
    assert mean_abs_diff(open_bytes(w320.data), upright) < 8
    assert mean_abs_diff(open_bytes(w320.data), upright.transpose(Image.Transpose.ROTATE_180)) > 20


def test_ten_bit_heic_is_scaled_not_clipped() -> None:
    data = formats.heic_10bit((64, 48), (40000, 20000, 65535))
    assert codec.open_image(data, LIMITS).info["bit_depth"] == 10
    _, out = decoded(data)
    red, green, blue = out.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
    assert abs(red - 40000 / 257) <= 3 and abs(green - 20000 / 257) <= 3 and blue >= 252  # clipping would give 255s


def test_nclx_display_p3_is_converted_to_srgb() -> None:
    """A P3 red described by nclx code points (no ICC) must come out as the sRGB red it is,
    as a P3 ICC profile converts it for JPEG, not read as if it were sRGB."""
    colour = (200, 30, 30)
    data = formats.heic(Image.new("RGB", (64, 48), colour), quality=100, chroma=444, color_primaries=12, transfer_characteristic=13)
    _, out = decoded(data)
    got = out.convert("RGB").getpixel((10, 10))
    reference = hostile.save(Image.new("RGB", (64, 48), colour), "PNG", icc_profile=hostile.rgb_icc_profile("Display P3 compatible"))
    expected = render_all(reference, EXACT).renditions[0]
    want = open_bytes(expected.data).convert("RGB").getpixel((10, 10))
    assert isinstance(got, tuple) and isinstance(want, tuple)
    assert got[0] > colour[0] + 10  # P3 red is redder than sRGB's 200
    # within 6: the reference profile has a 2.2 gamma curve where nclx 13 is the sRGB curve
    assert all(abs(a - b) <= 6 for a, b in zip(got, want, strict=True)), (got, want)


def test_embedded_icc_profile_is_converted_as_for_jpeg() -> None:
    icc = hostile.rgb_icc_profile("Adobe RGB (1998) compatible")
    source = hostile.photo((64, 48))
    _, from_heic = decoded(formats.heic(source, quality=100, chroma=444, icc_profile=icc))
    _, from_png = decoded(hostile.save(source, "PNG", icc_profile=icc))
    assert mean_abs_diff(from_heic, from_png) < 2.5
    assert mean_abs_diff(from_heic, source) > 3  # a conversion really happened


def test_collection_gives_the_primary_image_only() -> None:
    data = formats.heic_collection([(255, 0, 0), (0, 0, 255), (0, 255, 0)], primary=1)
    result, out = decoded(data)
    assert result.source.frames == 1
    red, green, blue = out.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert blue > 200 and red < 50 and green < 50


def test_declared_size_is_checked_before_decoding() -> None:
    data = hostile.case("heic")
    assert heif.primary_size(data) == (320, 240)
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(data, codec.DecodeLimits(max_pixels=320 * 240 - 1, max_frames=10))
    assert caught.value.code is ErrorCode.TOO_MANY_PIXELS and "320x240" in caught.value.message


@pytest.mark.parametrize(
    "name",
    [name for name in hostile.CASES if name.startswith("heic-") and hostile.CASES[name][1] != hostile.OK],
)
def test_broken_heic_is_rejected_with_a_code(name: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        render_all(hostile.case(name), WEB)
    assert caught.value.code is hostile.CASES[name][1]


def test_pi_heif_is_imported_only_when_a_heif_arrives() -> None:
    """Cold start: `import app` and a JPEG upload must not load libheif."""
    probe = (
        "import sys, app; from chalicelib.imaging import render; from tests.support import hostile;"
        "from tests.support.imagetools import LIMITS;"
        "from chalicelib.presets import WEB; before = 'pi_heif' in sys.modules;"
        "render.render(hostile.save(hostile.photo(), 'JPEG'), WEB, LIMITS, 'x'); jpeg = 'pi_heif' in sys.modules;"
        "render.render(hostile.case('heic'), WEB, LIMITS, 'x'); print(before, jpeg, 'pi_heif' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the dev stage's settings, as conftest set them for this process
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "False", "True"]


def test_requirements_pin_the_decode_only_build() -> None:
    """Lambda gets pi-heif (no GPL x265 encoder); pillow-heif only makes test files."""

    def pins(name: str) -> list[str]:
        lines = (ROOT / name).read_text().splitlines()
        return [line.split("==")[0].lower() for line in lines if "==" in line and not line.startswith("#")]

    assert "pi-heif" in pins("requirements.txt") and "pillow-heif" not in pins("requirements.txt")
    assert "pillow-heif" in pins("requirements-dev.txt")
    assert not any("pillow_heif" in path.read_text() for path in (ROOT / "chalicelib").rglob("*.py"))


def test_thumbnails_depth_maps_and_auxiliary_images_are_switched_off() -> None:
    """Only the primary image is ever decoded: pi-heif is registered with its thumbnail, depth
    and auxiliary image support off (pillow-heif 1.9 cannot write them, so this checks the
    switches and what the opened image carries)."""
    image = codec.open_image(hostile.case("heic"), LIMITS)
    import pi_heif

    assert (pi_heif.options.THUMBNAILS, pi_heif.options.DEPTH_IMAGES, pi_heif.options.AUX_IMAGES) == (False, False, False)
    assert image.info["thumbnails"] == [] and image.info["depth_images"] == [] and "aux" not in image.info
