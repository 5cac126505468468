"""The pure rendering path on real photos: sizes, orientation, colour, metadata."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from chalicelib.presets import CLASSIC, WEB, Profile
from tests.conftest import CORPUS, corpus_photos, fixture_bytes
from tests.support.imagetools import mean_abs_diff, metadata_markers, open_bytes, psnr, render_all

WEB_CENTRE = Profile("web", tuple(dataclasses.replace(p, crop="centre") for p in WEB.presets))


def by_preset(result):  # type: ignore[no-untyped-def]
    return {r.preset: r for r in result.renditions}


@pytest.mark.parametrize("name", ["orient_landscape_1.jpg", "orient_portrait_1.jpg"])
def test_web_profile_small_source_skips_widths_it_does_not_reach(name: str) -> None:
    result = render_all(fixture_bytes(name), WEB)
    presets = by_preset(result)
    # 600x450 / 450x600 sources: only 320 is reachable, never upscaled to 1024/2048.
    assert set(presets) == {"thumbnail", "w320_jpeg", "w320_webp", "w320_avif"}
    assert set(result.skipped) == {"w1024_jpeg", "w1024_webp", "w1024_avif", "w2048_jpeg", "w2048_webp", "w2048_avif"}
    assert (presets["thumbnail"].width, presets["thumbnail"].height) == (150, 150)
    assert presets["w320_jpeg"].width == 320
    expected_height = round(320 * result.source.height / result.source.width)
    assert presets["w320_jpeg"].height == expected_height
    assert presets["w320_webp"].height == expected_height


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_comes_out_upright(kind: str, orientation: int) -> None:
    source = CORPUS / f"orient_{kind}_{orientation}.jpg"
    data = source.read_bytes() if source.exists() else None
    if data is None:
        if kind == "portrait" and orientation != 6:
            pytest.skip("portrait orientations other than 6 need ../shared/corpus")
        data = fixture_bytes(f"orient_{kind}_{orientation}.jpg")
    # The thumbnail centre-cropped: a smart crop may frame the eight re-encoded files a step
    # (2 px) apart, which says nothing about orientation. The uncropped copy is compared too.
    reference_run, result_run = render_all(fixture_bytes(f"orient_{kind}_1.jpg"), WEB_CENTRE), render_all(data, WEB_CENTRE)
    assert result_run.preview is not None and reference_run.preview is not None
    assert mean_abs_diff(result_run.preview, reference_run.preview) < 6, f"{kind} orientation {orientation}: the facts' copy is not upright"
    reference, result = by_preset(reference_run), by_preset(result_run)
    for preset in ("w320_jpeg", "thumbnail"):
        ours, upright = open_bytes(result[preset].data), open_bytes(reference[preset].data)
        assert ours.size == upright.size
        # Same picture up to compression noise; a wrongly rotated or mirrored one differs by far more.
        assert mean_abs_diff(ours, upright) < 6, f"{kind} orientation {orientation} {preset} is not upright"
        assert mean_abs_diff(ours, upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) > 12


@pytest.mark.parametrize(
    ("fmt", "stored"),
    [
        ("JPEG", (2400, 3200)),  # draft decode, then a mild (bicubic) first resize
        ("PNG", (3077, 4101)),  # no draft: a Lanczos first resize from the full size
    ],
)
def test_threads_give_the_same_picture(fmt: str, stored: tuple[int, int]) -> None:
    # With workers the first big resize is shared by threads in bands of rows, then columns.
    # Lossless outputs show the pixels themselves: they must not move by a single value.
    from chalicelib.presets import Preset, Profile

    source = open_bytes(fixture_bytes("orient_landscape_6.jpg"))
    big = io.BytesIO()
    source.resize(stored, Image.Resampling.BICUBIC).save(big, fmt, exif=source.info["exif"], **({"quality": 90} if fmt == "JPEG" else {}))
    lossless = Profile("lossless", (Preset("large", "PNG", width=2048), Preset("small", "PNG", width=300)))
    alone = {r.preset: r for r in render_all(big.getvalue(), lossless, workers=1).renditions}
    shared = {r.preset: r for r in render_all(big.getvalue(), lossless, workers=3).renditions}
    for name, rendition in alone.items():
        assert (rendition.width, rendition.height) == (shared[name].width, shared[name].height)
        assert rendition.width == (2048 if name == "large" else 300)
        assert rendition.width > rendition.height, "upright: stored portrait with EXIF orientation 6"
        assert shared[name].data == rendition.data, name


def test_no_rendition_carries_source_metadata() -> None:
    # Orientation 6 has EXIF and an ICC profile; the CMYK one has Adobe/ICC/XMP segments.
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "secret")
    tagged_png = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    Image.open(io.BytesIO(fixture_bytes("alpha_paper_2048x1536.png"))).save(
        tagged_png, "PNG", pnginfo=text, exif=exif, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    )
    sources = {name: fixture_bytes(name) for name in ("orient_landscape_6.jpg", "cmyk_channel_digital_image.jpg")}
    sources["tagged.png"] = tagged_png.getvalue()
    for name, source in sources.items():
        assert metadata_markers(source), f"{name} should carry metadata for this test to mean anything"
        for profile in (WEB, CLASSIC):
            for rendition in render_all(source, profile).renditions:
                assert metadata_markers(rendition.data) == [], f"{name} -> {rendition.preset} leaks metadata"
                image = open_bytes(rendition.data)
                assert "exif" not in image.info and "icc_profile" not in image.info and "comment" not in image.info


def test_jpeg_comment_is_not_copied() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(buffer, "JPEG", comment=b"secret location: 51.5N 0.1W")
    for rendition in render_all(buffer.getvalue(), WEB).renditions:
        assert b"secret location" not in rendition.data


def test_cmyk_is_converted_through_its_icc_profile() -> None:
    data = fixture_bytes("cmyk_channel_digital_image.jpg")
    source = Image.open(io.BytesIO(data))
    assert source.mode == "CMYK"
    srgb = ImageCms.createProfile("sRGB")
    cmyk_profile = ImageCms.ImageCmsProfile(io.BytesIO(source.info["icc_profile"]))
    reference = ImageCms.profileToProfile(source, cmyk_profile, srgb, outputMode="RGB")
    naive = Image.open(io.BytesIO(data)).convert("RGB")
    ours = open_bytes(by_preset(render_all(data, CLASSIC))["converted_png"].data)
    assert ours.mode == "RGB" and ours.size == source.size
    assert mean_abs_diff(ours, reference) < 2.0
    # The naive conversion is visibly off; ours must be much closer to the ICC-correct one.
    assert mean_abs_diff(naive, reference) > 4 * mean_abs_diff(ours, reference)


def test_alpha_is_kept_for_webp_and_png_and_flattened_on_white_for_jpeg() -> None:
    data = fixture_bytes("alpha_paper_2048x1536.png")
    web = by_preset(render_all(data, WEB))
    assert open_bytes(web["w1024_webp"].data).mode == "RGBA"
    jpeg = open_bytes(web["w1024_jpeg"].data)
    assert jpeg.mode == "RGB"
    # 87.7% of the source is fully transparent: flattened on white, the corners are white.
    assert min(jpeg.getpixel((2, 2))) > 245  # type: ignore[arg-type]
    png = open_bytes(by_preset(render_all(data, CLASSIC))["converted_png"].data)
    assert png.mode == "RGBA" and png.getchannel("A").getextrema() == (0, 255)


def test_animated_gif_uses_first_frame() -> None:
    data = fixture_bytes("animated_loop3.gif")
    gif = Image.open(io.BytesIO(data))
    first = gif.convert("RGB")
    result = render_all(data, CLASSIC)
    assert result.source.frames == 10
    png = open_bytes(by_preset(result)["converted_png"].data)
    assert mean_abs_diff(png, first) < 1.0
    assert getattr(open_bytes(by_preset(result)["converted_webp"].data), "n_frames", 1) == 1


def test_classic_profile_names_and_sizes() -> None:
    result = render_all(fixture_bytes("orient_landscape_6.jpg"), CLASSIC, stem="holiday")
    files = {r.filename: r for r in result.renditions}
    assert set(files) == {
        "holiday_compressed.jpg",
        "holiday_low_quality.jpg",
        "holiday_converted.webp",
        "holiday_converted.png",
        "holiday_thumbnail.jpg",
    }
    width, height = result.source.width, result.source.height
    for name in ("holiday_compressed.jpg", "holiday_low_quality.jpg", "holiday_converted.webp", "holiday_converted.png"):
        assert (files[name].width, files[name].height) == (width, height)
    assert max(files["holiday_thumbnail.jpg"].width, files["holiday_thumbnail.jpg"].height) == 150
    assert files["holiday_low_quality.jpg"].size < files["holiday_compressed.jpg"].size
    assert open_bytes(files["holiday_converted.webp"].data).format == "WEBP"
    assert open_bytes(files["holiday_converted.png"].data).format == "PNG"


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    gradient = Image.linear_gradient("L").resize((256, 256)).convert("I")
    deep = gradient.point(lambda v: v * 257)  # 0..65535
    buffer = io.BytesIO()
    deep.convert("I;16").save(buffer, "PNG")
    png = open_bytes(by_preset(render_all(buffer.getvalue(), CLASSIC))["converted_png"].data).convert("L")
    low, high = png.getextrema()  # type: ignore[misc]
    assert low < 5 and high > 250
    # Mid-grey stays mid-grey (clipping would turn most of the gradient white).
    assert 100 < png.getpixel((128, 128)) < 156  # type: ignore[operator]


def test_palette_with_transparency_keeps_alpha() -> None:
    image = Image.new("P", (300, 200), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (100, 50, 200, 150))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    png = open_bytes(by_preset(render_all(buffer.getvalue(), CLASSIC))["converted_png"].data)
    assert png.mode == "RGBA"
    assert png.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert png.getpixel((150, 100)) == (0, 0, 255, 255)


@pytest.mark.slow
@pytest.mark.parametrize("photo", corpus_photos())
def test_real_photos_web_profile(photo: Path) -> None:
    data = photo.read_bytes()
    result = render_all(data, WEB)
    presets = by_preset(result)
    assert set(presets) == {p.name for p in WEB.presets if not p.animated}, "8-22 MP photos reach every width"
    reference = Image.open(photo)
    from PIL import ImageOps

    reference = ImageOps.exif_transpose(reference).convert("RGB")
    assert (result.source.width, result.source.height) == reference.size
    for name, rendition in presets.items():
        image = open_bytes(rendition.data)
        assert image.size == (rendition.width, rendition.height)
        assert metadata_markers(rendition.data) == []
        if name.startswith("w"):
            assert image.width == int(name[1:].split("_")[0])
            # Speed never comes from bad pixels: against a full-decode Lanczos reference, ours
            # must score as well as that reference itself encoded at the same quality.
            ideal = reference.resize(image.size, Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            preset = next(p for p in WEB.presets if p.name == name)  # AVIF's quality differs per width
            speed = {"speed": preset.options["speed"]} if preset.format == "AVIF" else {}
            ideal.save(buffer, rendition.format, quality=preset.quality, **speed)
            floor = psnr(open_bytes(buffer.getvalue()), ideal)
            assert psnr(image, ideal) > floor - 0.5, name


@pytest.mark.parametrize("stored", [(2731, 2048), (2731, 2047), (4101, 3077)])
def test_box_reduction_matches_pillows_own_reducing_gap(stored: tuple[int, int]) -> None:
    # steps.resize box-reduces a 6x+ reduction first; the box it hands to the final resample
    # (also used by the threaded bands) must be Pillow's own, or odd sides would shift the picture.
    from chalicelib.imaging import steps

    image = open_bytes(fixture_bytes("orient_landscape_1.jpg")).convert("RGB").resize(stored, Image.Resampling.BICUBIC)
    size = (stored[0] * 2 // 13, stored[1] * 2 // 13)  # 6.5x: reduce(2) then Lanczos
    expected = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=steps.REDUCING_GAP)
    assert steps.resize(image, size).tobytes() == expected.tobytes()
