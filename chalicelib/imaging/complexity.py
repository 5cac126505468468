"""Decode work, bounded before decoding: pixels x scans for JPEG, pixels x frames for animations.

A progressive JPEG is decoded once per scan over the whole image: a 0.3 MB, 49 MP file with
256 scans took 16 s of CPU against 1.3 s for the same picture in 10 scans, and the file size
and pixel limits let it through. The scans are counted from the markers (a walk over the
segment headers plus a C-speed search through each scan's entropy-coded data), so the check
costs a few milliseconds even for a 50 MB file, and runs before any decoder sees the bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from chalicelib.models import ErrorCode, RejectedInput

# Start-of-frame markers (dimensions): C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM: no length field
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), RSTn or more 0xFF fill bytes;
# anything else is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True)
class JpegShape:
    width: int
    height: int
    scans: int

    @property
    def work(self) -> int:
        """Pixel-scans: what a progressive decode costs, roughly linearly."""
        return self.width * self.height * max(self.scans, 1)


def jpeg_shape(data: bytes) -> JpegShape | None:
    """Dimensions and number of scans (SOS markers) of the first image of a JPEG; None when
    `data` is not a JPEG. A truncated or odd stream yields what was found: the decoder
    reports the corruption itself."""
    if not data.startswith(b"\xff\xd8"):
        return None
    width = height = scans = 0
    pos, end = 2, len(data)
    while pos + 1 < end:
        if data[pos] != 0xFF:
            return JpegShape(width, height, scans)  # not at a marker: let the decoder judge
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        pos += 2
        if marker in _STANDALONE:
            continue
        if marker == _EOI or pos + 2 > end:
            break
        length = struct.unpack_from(">H", data, pos)[0]
        if marker in _SOF and pos + 7 <= end and not width:
            height, width = struct.unpack_from(">HH", data, pos + 3)
        pos += length
        if marker == _SOS:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return JpegShape(width, height, scans)


def check_source_size(size: int, limit: int) -> None:
    """The first bound, on the file itself (from HEAD, before it is read)."""
    if size == 0:
        raise RejectedInput(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    if size > limit:
        raise RejectedInput(ErrorCode.TOO_LARGE, f"{size:,} bytes exceeds MAX_SOURCE_BYTES ({limit:,})")


def check_decode_work(data: bytes, max_work: int, max_pixels: int) -> None:
    """Reject (`too_complex`) a JPEG whose pixels x scans exceed `max_work` (MAX_DECODE_WORK).
    One over `max_pixels` is left to the decoder's pixel check (`too_many_pixels` says more)."""
    shape = jpeg_shape(data)
    if shape is not None and shape.work > max_work and shape.width * shape.height <= max_pixels:
        raise RejectedInput(
            ErrorCode.TOO_COMPLEX,
            f"{shape.width}x{shape.height} JPEG in {shape.scans} scans = {shape.work:,} pixel-scans to decode, "
            f"over the limit of {max_work:,} (MAX_DECODE_WORK)",
        )


def check_frame_work(width: int, height: int, frames: int, max_work: int) -> None:
    """Reject (`too_complex`) an animation whose every frame would be decoded when canvas
    pixels x frames exceed `max_work`: each frame is a full decode. Not on the pipeline's path:
    a kept animation is bounded by imaging.animation.check_budget (MAX_ANIMATION_PIXELS)."""
    work = width * height * max(frames, 1)
    if work > max_work:
        raise RejectedInput(
            ErrorCode.TOO_COMPLEX,
            f"{width}x{height} x {frames} frames = {work:,} pixel-frames to decode, over the limit of {max_work:,} (MAX_DECODE_WORK)",
        )
