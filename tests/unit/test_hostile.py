"""Hostile and odd uploads through the whole service: every case ends in a typed outcome,
recorded, with no partial output; odd-but-valid images render correctly and carry no
metadata. The files are generated in tests/support/hostile.py (nothing is downloaded)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from typing import Any

import pytest
from PIL import Image, ImageCms

from chalicelib import processing
from chalicelib.imaging import codec, render
from chalicelib.models import ErrorCode, RejectedInput, Upload
from chalicelib.presets import CLASSIC, WEB
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore
from tests.conftest import ROOT, fixture_bytes
from tests.support import hostile
from tests.support.imagetools import LIMITS, mean_abs_diff, metadata_markers, open_bytes, render_all
from tests.support.wiring import make_pipeline, stored_record


def by_preset(result: Any) -> dict[str, Any]:
    return {r.preset: r for r in result.renditions}


@pytest.mark.parametrize("name", list(hostile.CASES))
def test_every_hostile_or_odd_upload_gets_a_typed_recorded_outcome(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = hostile.case(name)
    expected = hostile.CASES[name][1]
    p = make_pipeline(CLASSIC)
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    key = f"uploads/hostile/{name}"
    store.add("up", key, data)
    outcome = processing.handle_upload(p, Upload("up", key, sequencer="01"))  # never raises for bad input
    record = stored_record(p, key)
    assert record is not None
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    if expected == hostile.OK:
        assert outcome.status == "processed", outcome.reason
        assert len(record["renditions"]) == len(CLASSIC.presets)
        for rendition in outcome.renditions:
            stored = store.buckets["out"][rendition.key].data
            image = open_bytes(stored)  # a complete, decodable file
            assert image.size == (rendition.width, rendition.height)
            assert max(image.size) <= 16383 or image.format != "WEBP"
            assert metadata_markers(stored) == []
        assert line["event"] == "image.processed"
    else:
        assert outcome.status == "rejected"
        assert record["status"] == "rejected" and record["error_code"] == expected.value and record["renditions"] == []
        assert store.keys("out") == []
        assert line["event"] == "image.rejected" and line["error_code"] == expected.value and line["ImagesRejected"] == 1
        assert store.buckets["up"][key].tags["pipeline-status"] == "rejected"


@pytest.mark.parametrize(
    ("name", "raised"),
    [("tiff-typeerror", TypeError), ("tiff-page2-typeerror", TypeError), ("tiff-page2-syntaxerror", SyntaxError)]
    + ([("avif-corrupt-data", RuntimeError)] if hostile.AVIF else []),
)
def test_corrupt_files_pillow_raises_non_oserrors_on(name: str, raised: type[Exception]) -> None:
    """The cases the issue names: Pillow's TIFF decoder raises TypeError (or SyntaxError),
    not OSError, on these (on a later page only when it walks there), its AVIF plugin
    RuntimeError; we turn each into a typed rejection."""
    with pytest.raises(raised):
        image = Image.open(io.BytesIO(hostile.case(name)))
        getattr(image, "n_frames", 1)
        image.load()
    with pytest.raises(RejectedInput) as caught:
        render_all(hostile.case(name), WEB)
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE


def test_svg_is_refused_even_when_named_png_with_a_raster_signature_inside() -> None:
    # An SVG that embeds a PNG data URI is still SVG: identification is by the container.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,iVBORw0KGgo="/></svg>'
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(svg, LIMITS)
    assert caught.value.code is ErrorCode.UNSUPPORTED_FORMAT and "SVG" in caught.value.message


def test_frame_counting_matches_pillow_and_is_bounded() -> None:
    gifs = [fixture_bytes("animated_loop3.gif"), hostile.case("animated-gif"), hostile.gif_frames(7)]
    for data in gifs:
        assert codec._gif_frames(data, LIMITS) == Image.open(io.BytesIO(data)).n_frames  # type: ignore[attr-defined]
    for tiff in (hostile.tiff_pages(5), hostile.bigtiff_pages(5)):
        assert codec._tiff_pages(tiff, 1000) == Image.open(io.BytesIO(tiff)).n_frames == 5  # type: ignore[attr-defined]
    # Walking stops one past the limit, whatever the file holds.
    assert codec._gif_frames(hostile.case("gif-2M-frames"), codec.DecodeLimits(10**7, 5)) == 6
    assert codec._tiff_pages(hostile.case("tiff-1001-pages"), 5) == 6
    assert codec._tiff_pages(hostile.case("bigtiff-1001-pages"), 5) == 6


def test_tiff_ifd_loop_terminates() -> None:
    data = bytearray(hostile.tiff_pages(1))
    first = int.from_bytes(data[4:8], "little")
    entries = int.from_bytes(data[first : first + 2], "little")
    next_at = first + 2 + 12 * entries
    data[next_at : next_at + 4] = first.to_bytes(4, "little")  # the IFD points at itself
    assert codec._tiff_pages(bytes(data), 1000) == 1
    render_all(bytes(data), WEB)  # and Pillow copes too


def test_limits_are_settings() -> None:
    env = {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"}
    strict = Settings.from_env({**env, "MAX_SOURCE_PIXELS": "10000", "MAX_FRAMES": "3", "MAX_SOURCE_BYTES": "100000"})
    p = make_pipeline(WEB, settings=strict)
    cases = {
        "uploads/big.jpg": (fixture_bytes("orient_landscape_1.jpg"), "too_large"),
        "uploads/px.png": (hostile.save(Image.new("RGB", (101, 100)), "PNG"), "too_many_pixels"),
        "uploads/frames.gif": (hostile.gif_frames(4), "too_many_frames"),
        "uploads/ok.gif": (hostile.gif_frames(3), None),
        **({"uploads/px.avif": (hostile.save(Image.new("RGB", (101, 100)), "AVIF"), "too_many_pixels")} if hostile.AVIF else {}),
    }
    for key, (data, code) in cases.items():
        store = p.store
        assert isinstance(store, MemoryObjectStore)
        store.add("up", key, data)
        outcome = processing.handle_upload(p, Upload("up", key, sequencer="01"))
        assert (outcome.record.error_code if outcome.record else None) == code, key
    defaults = Settings.from_env(env)
    assert (defaults.max_source_bytes, defaults.max_source_pixels, defaults.max_frames) == (50 * 1024 * 1024, 50_000_000, 1000)


# --- odd but valid: the pixels are right ------------------------------------------------------


def test_first_frame_or_page_is_rendered() -> None:
    red, blue = Image.new("RGB", (200, 100), (220, 20, 20)), Image.new("RGB", (200, 100), (20, 20, 220))
    sources = {
        "GIF": hostile.save(red, "GIF", save_all=True, append_images=[blue]),
        "WEBP": hostile.save(red, "WEBP", save_all=True, append_images=[blue], lossless=True),
        "APNG": hostile.save(red, "PNG", save_all=True, append_images=[blue]),
        "TIFF": hostile.save(red, "TIFF", save_all=True, append_images=[blue]),
        "MPO": hostile.save(red, "MPO", save_all=True, append_images=[blue]),
        **({"AVIF": hostile.save(red, "AVIF", save_all=True, append_images=[blue], quality=90)} if hostile.AVIF else {}),
    }
    for fmt, data in sources.items():
        result = render_all(data, CLASSIC)
        assert result.source.frames == 2, fmt
        png = open_bytes(by_preset(result)["converted_png"].data).convert("RGB")
        assert mean_abs_diff(png, red) < 8, f"{fmt}: not the first frame"
        webp = open_bytes(by_preset(result)["converted_webp"].data)
        assert getattr(webp, "n_frames", 1) == 1, f"{fmt}: a still must not be animated"


def test_webp_side_limit_is_capped_and_noted() -> None:
    p = make_pipeline(CLASSIC)
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    store.add("up", "uploads/strip.png", hostile.case("20000x1"))
    outcome = processing.handle_upload(p, Upload("up", "uploads/strip.png", sequencer="01"))
    renditions = {r.preset: r for r in outcome.renditions}
    webp = open_bytes(store.buckets["out"][renditions["converted_webp"].key].data)
    assert webp.format == "WEBP" and webp.size == (16383, 1)
    assert open_bytes(store.buckets["out"][renditions["converted_png"].key].data).size == (20000, 1)
    assert outcome.record is not None
    assert any("16383" in note and "converted_webp" in note for note in outcome.record.notes or ())


def test_jpeg_side_limit_is_capped_and_noted() -> None:
    result = by_preset(render_all(hostile.case("70000x1"), CLASSIC))
    assert open_bytes(result["compressed"].data).size == (65500, 1)
    assert open_bytes(result["converted_webp"].data).size == (16383, 1)
    assert open_bytes(result["converted_png"].data).size == (70000, 1)


@pytest.mark.parametrize("profile_name", sorted(hostile.WIDE_GAMUTS))
def test_wide_gamut_sources_are_converted_to_srgb_and_their_profile_dropped(profile_name: str) -> None:
    """Adobe RGB and Display P3 photos (what cameras and phones embed): the renditions carry
    no profile, so browsers read them as sRGB, and their pixels are the ICC-correct sRGB
    values (littlecms' conversion of the decoded source), not the raw numbers."""
    icc = hostile.rgb_icc_profile(profile_name)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert ImageCms.getProfileDescription(profile).strip() == profile_name
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        data = hostile.save(hostile.photo(), fmt, icc_profile=icc, quality=95)
        decoded = open_bytes(data).convert("RGB")
        reference = ImageCms.profileToProfile(decoded, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        assert reference is not None
        renditions = by_preset(render_all(data, CLASSIC))
        for rendition in renditions.values():
            assert metadata_markers(rendition.data) == [], f"{profile_name} {fmt} -> {rendition.preset}"
            assert "icc_profile" not in open_bytes(rendition.data).info
        png = open_bytes(renditions["converted_png"].data)
        assert mean_abs_diff(png, reference) < 0.5, f"{profile_name} {fmt}: not converted to sRGB"
        assert mean_abs_diff(decoded, reference) > 2, "the profile must make a visible difference for this test to mean anything"


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_exif_orientation_is_ignored(orientation: int) -> None:
    upright = hostile.photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = render_all(hostile.save(upright, "JPEG", exif=exif, quality=95), CLASSIC)
    assert (result.source.width, result.source.height) == upright.size
    assert mean_abs_diff(open_bytes(by_preset(result)["converted_png"].data), upright) < 4


def test_cmyk_without_profile_keeps_its_colours() -> None:
    rgb = hostile.photo()
    result = render_all(hostile.save(rgb.convert("CMYK"), "JPEG", quality=95), CLASSIC)
    png = open_bytes(by_preset(result)["converted_png"].data)
    assert png.mode == "RGB"
    assert mean_abs_diff(png, rgb) < 6  # Pillow's plain conversion round-trips its own CMYK


def test_la_and_one_pixel_images() -> None:
    la = render_all(hostile.case("LA"), CLASSIC)
    assert open_bytes(by_preset(la)["converted_png"].data).mode in ("RGBA", "LA")
    assert open_bytes(by_preset(la)["compressed"].data).mode in ("RGB", "L")
    one = by_preset(render_all(hostile.case("1x1"), WEB))
    assert (one["thumbnail"].width, one["thumbnail"].height) == (1, 1)
    assert open_bytes(one["thumbnail"].data).getpixel((0, 0))[0] > 240  # type: ignore[index]


def test_metadata_of_every_kind_is_stripped_on_the_bytes() -> None:
    secret = b"SECRET-51.5074N"
    photo = hostile.photo()
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 26.0)}  # GPS IFD
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description>' + secret + b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    adobe_rgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # a non-sRGB profile
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x14\x1c\x02\x78\x00\x10" + secret[:16]
    jpeg = hostile.save(photo, "JPEG", exif=exif, xmp=xmp, comment=secret)
    jpeg = jpeg[:2] + b"\xff\xed" + (len(iptc) + 2).to_bytes(2, "big") + iptc + jpeg[2:]  # APP13 (IPTC)
    sources = {
        "jpeg exif+gps+xmp+iptc+com": jpeg,
        "gif comment": hostile.save(hostile.palette(photo), "GIF", comment=secret),
        "png text+exif+xmp": hostile.save(photo, "PNG", exif=exif, pnginfo=_png_text(secret)),
        "webp exif+xmp": hostile.save(photo, "WEBP", exif=exif, xmp=xmp),
        "tiff with non-srgb icc": hostile.save(photo, "TIFF", icc_profile=adobe_rgb, description=secret.decode()),
        **({"avif exif+xmp": hostile.save(photo, "AVIF", exif=exif, xmp=xmp)} if hostile.AVIF else {}),
    }
    for name, data in sources.items():
        assert secret in data or name.startswith("tiff") or name.startswith("webp"), name
        for profile in (WEB, CLASSIC):
            for rendition in render_all(data, profile).renditions:
                assert secret not in rendition.data, f"{name} -> {rendition.preset}"
                assert metadata_markers(rendition.data) == [], f"{name} -> {rendition.preset}"
                assert b"Exif" not in rendition.data[:4096] and b"GPS" not in rendition.data, f"{name} -> {rendition.preset}"


def _png_text(secret: bytes) -> Any:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", secret.decode())
    info.add_itxt("XML:com.adobe.xmp", secret.decode(), zip=True)
    return info


# --- memory ---------------------------------------------------------------------------------

PROCESS_UPLOAD_MB = 1536  # .chalice/config.json: process_upload's lambda_memory_size (make bench's cost table)
# The threads the handler renders with at that size (1 below 1,769 MB): more threads, more buffers alive.
PROCESS_UPLOAD_WORKERS = render.worker_count(0, PROCESS_UPLOAD_MB)


@pytest.mark.slow
def test_peak_memory_stays_under_the_function_memory() -> None:
    """Each case runs in a fresh child process measuring its own peak RSS (VmHWM, reset
    between cases): bombs must stay small, the largest legal images under the function."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert config["stages"]["prod"]["lambda_functions"]["process_upload"]["lambda_memory_size"] == PROCESS_UPLOAD_MB
    bombs = (ErrorCode.TOO_MANY_PIXELS, ErrorCode.TOO_MANY_FRAMES)
    names = [n for n, (_, expected) in hostile.CASES.items() if expected in bombs or "bomb" in n or "scans" in n or "many" in n]
    names += ["limit-png-rgba", "limit-png-16bit-grey"]  # limit-jpeg-cmyk (0.7 GB): by hand
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.memprobe", *names],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "MEMPROBE_WORKERS": str(PROCESS_UPLOAD_WORKERS)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peaks: dict[str, dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(peaks, indent=1))
    for name, seen in peaks.items():
        assert seen["outcome"] == seen["expected"], name
        # The largest legal images may use the function's memory minus what the runtime,
        # boto3 and the downloaded body need (256 MB); a bomb must be refused cheaply.
        budget = PROCESS_UPLOAD_MB - 256 if name.startswith("limit-") else 300
        assert seen["peak_mb"] < budget, f"{name} peaked at {seen['peak_mb']} MB (budget {budget} MB)"


@pytest.mark.slow
def test_real_camera_photo_truncated_or_over_a_lower_limit(corpus: Any) -> None:
    """A real 22 MP camera JPEG (../shared/corpus; skipped where absent): cut short it is
    `corrupt_image`; under a 20 MP limit it is `too_many_pixels` before any decoding."""
    data = (corpus / "photo_22mp_issue266.jpg").read_bytes()
    for cut in (0.3, 0.9):
        with pytest.raises(RejectedInput) as caught:
            render_all(data[: int(len(data) * cut)], WEB)
        assert caught.value.code is ErrorCode.CORRUPT_IMAGE
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(data, codec.DecodeLimits(max_pixels=20_000_000, max_frames=1000))
    assert caught.value.code is ErrorCode.TOO_MANY_PIXELS


# --- found by the unseen-inputs sweep ----------------------------------------------------------


def _quadrants(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Red, green, blue and white quarters: any rotation or mirror of it is far from it."""
    image = Image.new("RGB", size, (255, 255, 255))
    width, height = size
    image.paste((220, 30, 30), (0, 0, width // 2, height // 2))
    image.paste((30, 200, 30), (width // 2, 0, width, height // 2))
    image.paste((30, 30, 220), (0, height // 2, width // 2, height))
    return image


@pytest.mark.parametrize("compression", ["raw", "jpeg"])
def test_tiff_orientation_tag_is_applied_once(compression: str) -> None:
    """Pillow applies a TIFF's Orientation tag itself (its `size` is already upright and
    load() transposes); applying it again gave sideways or unflipped renditions."""
    from PIL import TiffImagePlugin

    from chalicelib.imaging import steps

    upright = _quadrants()
    for orientation in range(2, 9):
        # Stored so that applying `orientation` gives the upright picture back (6 and 8 are
        # each other's inverse; the other transposes are their own).
        stored = upright.transpose(steps._ORIENTATION_TRANSPOSE[{6: 8, 8: 6}.get(orientation, orientation)])
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[0x0112] = orientation
        extra = {"compression": "jpeg", "quality": 95} if compression == "jpeg" else {}
        result = render_all(hostile.save(stored, "TIFF", tiffinfo=tags, **extra), CLASSIC)
        assert (result.source.width, result.source.height) == upright.size, orientation
        png = open_bytes(by_preset(result)["converted_png"].data)
        assert png.size == upright.size and mean_abs_diff(png, upright) < 4, f"orientation {orientation} not upright"


def test_jpeg_headers_pillow_refuses_get_a_readable_reason() -> None:
    """Pillow refuses 12-bit JPEGs and odd frame headers when it opens them; the reason must
    say so, not leak Pillow internals (it was KeyError 'MPO' for every such file)."""
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(hostile.case("jpeg-12-bit"), LIMITS)
    assert caught.value.code is ErrorCode.UNSUPPORTED_FORMAT and "12-bit JPEG" in caught.value.message
    two_components = bytearray(hostile.save(hostile.photo((64, 48)), "JPEG"))
    two_components[two_components.find(b"\xff\xc0") + 9] = 2
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(bytes(two_components), LIMITS)
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE and caught.value.message == "looks like JPEG but its header cannot be read"


def test_icc_profile_split_over_several_app2_segments_is_applied() -> None:
    """A JPEG segment holds at most 64 KB, so big profiles (printer, camera LUT profiles) are
    split over several APP2 segments; the whole profile must be read and applied."""
    icc = hostile.rgb_icc_profile("Display P3 compatible")
    icc = struct.pack(">I", len(icc) + 150_000) + icc[4:] + bytes(150_000)  # padded past two segments
    data = hostile.save(_quadrants(), "JPEG", icc_profile=icc, quality=95)
    assert data.count(b"ICC_PROFILE\x00") == 3
    decoded = open_bytes(data)
    reference = ImageCms.profileToProfile(decoded, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"))
    assert reference is not None
    png = open_bytes(by_preset(render_all(data, CLASSIC))["converted_png"].data)
    assert mean_abs_diff(png, reference) < 0.5 and mean_abs_diff(decoded, reference) > 2


def test_palette_image_with_a_wide_gamut_profile_is_converted_to_srgb() -> None:
    """A palette's colours are in the embedded profile's space like any pixels: they were
    read as sRGB (the palette expanded, the profile dropped)."""
    icc = hostile.rgb_icc_profile("Display P3 compatible")
    to_srgb = (ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"))
    source = hostile.palette(hostile.photo(), 64)
    for fmt, params in (("PNG", {}), ("PNG", {"transparency": 0}), ("TIFF", {})):
        data = hostile.save(source, fmt, icc_profile=icc, **params)
        reference = ImageCms.profileToProfile(open_bytes(data).convert("RGB"), *to_srgb, outputMode="RGB")
        assert reference is not None
        png = open_bytes(by_preset(render_all(data, CLASSIC))["converted_png"].data)
        assert png.mode == ("RGBA" if params else "RGB"), fmt
        assert mean_abs_diff(png, reference) < 0.5, f"{fmt} {params}: palette not converted through its profile"
        assert mean_abs_diff(source, reference) > 2
