"""Decode work is bounded before decoding: pixels x scans of a JPEG (the scan bomb)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from chalicelib.imaging.complexity import JpegShape, check_decode_work, check_frame_work, jpeg_shape
from chalicelib.models import ErrorCode, RejectedInput
from chalicelib.settings import DEFAULT_MAX_DECODE_WORK, DEFAULT_MAX_SOURCE_PIXELS
from tests.conftest import corpus_photos, fixture_bytes
from tests.support.wiring import make_pipeline, stored_record, upload


def progressive(size: tuple[int, int] = (600, 450), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "gray").save(out, "JPEG", progressive=True, quality=80)
    return out.getvalue()


def scan_bomb(width: int, height: int, scans: int) -> bytes:
    """A progressive JPEG declaring width x height whose last scan is repeated until it has
    `scans` scans: the shape of the 0.3 MB, 49 MP, 256-scan file that took 16 s of CPU."""
    data = progressive()
    sof = data.index(b"\xff\xc2")
    data = data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]
    last = data.rindex(b"\xff\xda")
    eoi = data.rindex(b"\xff\xd9")
    have = jpeg_shape(data)
    assert have is not None
    return data[:eoi] + data[last:eoi] * (scans - have.scans) + b"\xff\xd9"


def test_scans_are_counted_from_the_markers() -> None:
    assert jpeg_shape(progressive()) == JpegShape(600, 450, 10)  # libjpeg's default progression
    assert jpeg_shape(progressive(mode="L")) == JpegShape(600, 450, 6)
    assert jpeg_shape(fixture_bytes("orient_landscape_1.jpg")) == JpegShape(600, 450, 1)  # baseline
    assert jpeg_shape(scan_bomb(7000, 7000, 256)) == JpegShape(7000, 7000, 256)
    assert jpeg_shape(fixture_bytes("alpha_paper_2048x1536.png")) is None
    assert jpeg_shape(b"\xff\xd8\xff") == JpegShape(0, 0, 0)  # truncated: the decoder reports it


def test_the_scan_bomb_is_rejected_as_too_complex_before_decoding() -> None:
    bomb = scan_bomb(7000, 7000, 256)
    assert len(bomb) < 300_000
    with pytest.raises(RejectedInput) as info:
        check_decode_work(bomb, DEFAULT_MAX_DECODE_WORK, DEFAULT_MAX_SOURCE_PIXELS)
    assert info.value.code == ErrorCode.TOO_COMPLEX and "256 scans" in info.value.message
    p = make_pipeline()
    outcome = upload(p, "uploads/bomb.jpg", bomb)
    assert outcome.status == "rejected"
    record = stored_record(p, "uploads/bomb.jpg")
    assert record is not None and record["error_code"] == "too_complex"


def test_the_same_picture_in_ten_scans_is_within_budget() -> None:
    check_decode_work(scan_bomb(7000, 7000, 10), DEFAULT_MAX_DECODE_WORK, DEFAULT_MAX_SOURCE_PIXELS)  # 49 MP x 10 = 490 M pixel-scans


@pytest.mark.parametrize("photo", corpus_photos())
def test_every_corpus_photo_passes_baseline_and_progressive(photo: Path) -> None:
    data = photo.read_bytes()
    check_decode_work(data, DEFAULT_MAX_DECODE_WORK, DEFAULT_MAX_SOURCE_PIXELS)
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, "JPEG", progressive=True, quality=85)
    shape = jpeg_shape(out.getvalue())
    assert shape is not None and shape.scans == 10
    assert shape.work * 3 <= DEFAULT_MAX_DECODE_WORK  # room to spare: three times the scans still pass


def test_animations_are_bounded_by_pixels_times_frames() -> None:
    check_frame_work(1920, 1080, 300, DEFAULT_MAX_DECODE_WORK)  # a 10 s full-HD clip at 30 fps
    with pytest.raises(RejectedInput) as info:
        check_frame_work(7000, 7000, 1000, DEFAULT_MAX_DECODE_WORK)  # within MAX_SOURCE_PIXELS and MAX_FRAMES
    assert info.value.code == ErrorCode.TOO_COMPLEX
