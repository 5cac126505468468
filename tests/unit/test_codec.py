"""Decoding limits and typed rejections: nothing but RejectedInput escapes for bad input."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chalicelib.imaging import codec
from chalicelib.models import ErrorCode, RejectedInput
from chalicelib.presets import WEB
from tests.conftest import fixture_bytes
from tests.support.imagetools import LIMITS, png_header_only, render_all


def rejection(data: bytes) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        render_all(data, WEB)
    return caught.value


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_FILE),
        (b"hello, this is plain text and not an image\n" * 10, ErrorCode.NOT_AN_IMAGE),
        (bytes(range(256)) * 40, ErrorCode.NOT_AN_IMAGE),
        (b"<html><body>not an image</body></html>", ErrorCode.NOT_AN_IMAGE),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', ErrorCode.UNSUPPORTED_FORMAT),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", ErrorCode.UNSUPPORTED_FORMAT),
        (b"8BPS\x00\x01" + b"\x00" * 40, ErrorCode.UNSUPPORTED_FORMAT),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", ErrorCode.UNSUPPORTED_FORMAT),
    ],
    ids=["empty", "text", "random", "html", "svg", "pdf", "psd", "eps"],
)
def test_non_images_are_rejected_by_content(data: bytes, code: ErrorCode) -> None:
    assert rejection(data).code is code


def test_truncated_jpeg_is_rejected() -> None:
    data = fixture_bytes("orient_landscape_1.jpg")
    assert rejection(data[: len(data) // 2]).code is ErrorCode.CORRUPT_IMAGE


def test_truncated_png_is_rejected() -> None:
    buffer = io.BytesIO()
    Image.effect_noise((400, 300), 64).convert("RGB").save(buffer, "PNG")
    assert rejection(buffer.getvalue()[:3000]).code is ErrorCode.CORRUPT_IMAGE


def test_png_declaring_30000_squared_pixels_is_refused_before_decoding() -> None:
    error = rejection(png_header_only(30000, 30000))
    assert error.code is ErrorCode.TOO_MANY_PIXELS
    assert "900,000,000" in error.message


@pytest.mark.parametrize("pixels", [LIMITS.max_pixels + 1, 100_000_000, 150_000_000])
def test_pillow_warning_zone_cannot_slip_through(pixels: int) -> None:
    # Between our limit and Pillow's own error threshold (2x MAX_IMAGE_PIXELS) there is a
    # zone where Pillow only warns; our check must reject all of it.
    width = 10000
    assert rejection(png_header_only(width, pixels // width + 1)).code is ErrorCode.TOO_MANY_PIXELS


def test_limit_is_configurable() -> None:
    small = codec.DecodeLimits(max_pixels=1000, max_frames=10)
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(fixture_bytes("orient_landscape_1.jpg"), small)
    assert caught.value.code is ErrorCode.TOO_MANY_PIXELS


def test_frame_limit() -> None:
    with pytest.raises(RejectedInput) as caught:
        codec.open_image(fixture_bytes("animated_loop3.gif"), codec.DecodeLimits(max_pixels=10**7, max_frames=5))
    assert caught.value.code is ErrorCode.TOO_MANY_FRAMES


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_allowed_formats_are_identified_by_content(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, fmt)
    assert codec.sniff_format(buffer.getvalue()) == fmt
    result = render_all(buffer.getvalue(), WEB)
    assert result.source.format == fmt
    assert (result.source.width, result.source.height) == (64, 48)


def test_other_pillow_formats_are_not_opened() -> None:
    for fmt in ("PCX", "TGA", "ICO", "PPM"):
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buffer, fmt)
        assert rejection(buffer.getvalue()).code in (ErrorCode.NOT_AN_IMAGE, ErrorCode.UNSUPPORTED_FORMAT), fmt


def _noise(size: tuple[int, int]) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, sigma) for sigma in (40, 60, 80)])


@pytest.mark.parametrize("options", [{}, {"optimize": True, "progressive": True}], ids=["baseline", "progressive"])
def test_jpeg_bytes_do_not_depend_on_the_output_buffer(monkeypatch: pytest.MonkeyPatch, options: dict[str, object]) -> None:
    # JPEGs are encoded into a memfd (so Pillow releases the GIL); without one, a BytesIO.
    image = _noise((640, 480))
    through_memfd = codec.encode(image, "JPEG", 82, dict(options))
    monkeypatch.delattr(codec.os, "memfd_create")
    through_bytesio = codec.encode(image, "JPEG", 82, dict(options))
    assert through_memfd == through_bytesio
    assert Image.open(io.BytesIO(through_memfd)).size == (640, 480)


def test_jpeg_encoding_lets_other_threads_run() -> None:
    # Render threads resize while others encode: a JPEG encode must not hold the GIL, or
    # every other thread stops for its whole duration. Counts how far this thread's Python
    # loop gets while the encode runs, against its pace alone: held, it gets ~0%.
    import threading
    import time

    image = _noise((3000, 2000))
    codec.encode(image, "JPEG", 95, {"optimize": True, "progressive": True})  # warm-up

    def spin(seconds: float) -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            count += 1
        return count

    pace = spin(0.1) / 0.1
    done = threading.Event()
    worker = threading.Thread(target=lambda: (codec.encode(image, "JPEG", 95, {"optimize": True, "progressive": True}), done.set()))
    count, start = 0, time.perf_counter()
    worker.start()
    while not done.is_set():
        count += 1
        time.perf_counter()
    elapsed = time.perf_counter() - start
    worker.join()
    assert count > 0.2 * pace * elapsed, f"{count} loop turns in {elapsed * 1000:.0f} ms; alone: {pace * elapsed:.0f}"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC/HEIF files are not accepted: export or share the photo as JPEG"),
        (b"\xff\x0a\xfa\x7f\x01\x90\x08", "JPEG XL files are not accepted"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\x00\x14ftypjp2 ", "JPEG 2000 files are not accepted"),
        (b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x03\x00", "QOI files are not accepted"),
    ],
    ids=["heic", "jxl", "jp2", "qoi"],
)
def test_image_formats_we_refuse_are_named(data: bytes, named: str) -> None:
    """An iPhone's HEIC or a JPEG XL export is an image, just not one we take: the reason
    names it (it was "not a recognised image" for JPEG XL, JPEG 2000 and QOI)."""
    refused = rejection(data)
    assert refused.code is ErrorCode.UNSUPPORTED_FORMAT and refused.message == named


def test_rejection_reasons_are_kept_short() -> None:
    # A reason can quote a decoder's error text (and that the file); it is stored in the
    # catalog and sent in the SNS event, so it is cut, visibly.
    reason = RejectedInput(ErrorCode.CORRUPT_IMAGE, "JPEG data is corrupt: " + "A" * 10_000)
    assert len(reason.message) == RejectedInput.MAX_MESSAGE
    assert reason.message.startswith("JPEG data is corrupt: AAA") and reason.message.endswith("…")
    assert RejectedInput(ErrorCode.EMPTY_FILE, "the file is empty").message == "the file is empty"
