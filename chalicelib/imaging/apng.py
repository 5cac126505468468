"""APNG frames composited as the APNG specification (and browsers) do.

Each frame's own pixels are decoded by Pillow's PNG decoder from a one-frame PNG rebuilt
from its `fcTL` + `IDAT`/`fdAT` chunks; dispose (none, background, previous) and blend
(source, over) are applied here with real alpha compositing. Pillow 13's own APNG reader
pastes OVER frames with their alpha as a mask (a half-transparent red over opaque blue came
out 75% opaque) and its "previous" disposal restored the blended canvas.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from chalicelib.models import ErrorCode, RejectedInput

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FRAME_CHUNKS = {b"IHDR", b"acTL", b"fcTL", b"IDAT", b"fdAT", b"IEND"}
_DISPOSE_NONE, _DISPOSE_BACKGROUND, _DISPOSE_PREVIOUS = 0, 1, 2
_BLEND_SOURCE = 0


@dataclass(frozen=True)
class _Control:
    width: int
    height: int
    x: int
    y: int
    duration: int
    dispose: int
    blend: int


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            raise _corrupt(f"chunk {kind!r} is truncated")
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def _corrupt(why: str) -> RejectedInput:
    return RejectedInput(ErrorCode.CORRUPT_IMAGE, f"APNG is corrupt: {why}")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _control(body: bytes) -> _Control:
    if len(body) < 26:
        raise _corrupt("fcTL chunk is short")
    _, width, height, x, y, num, den, dispose, blend = struct.unpack_from(">IIIIIHHBB", body)
    return _Control(width, height, x, y, round(num * 1000 / (den or 100)), dispose, blend)


def _decode(ihdr: bytes, shared: bytes, control: _Control, data: bytes) -> Image.Image:
    header = struct.pack(">II", control.width, control.height) + ihdr[8:]
    png = _SIGNATURE + _chunk(b"IHDR", header) + shared + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    image = Image.open(io.BytesIO(png), formats=["PNG"])
    image.load()
    return image.convert("RGBA")


def frames(data: bytes) -> Iterator[tuple[Image.Image, int]]:
    """The frames of the animation as shown (RGBA canvas, milliseconds), one at a time."""
    ihdr, shared, declared = b"", b"", 0
    control: _Control | None = None
    pieces: list[bytes] = []
    state = _Canvas()
    count = 0
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"acTL":
            declared = struct.unpack_from(">I", body)[0] if len(body) >= 4 else 0
        elif kind not in _FRAME_CHUNKS and control is None and count == 0:
            shared += _chunk(kind, body)  # PLTE, tRNS, gAMA...: every frame's decoder needs them
        if kind in (b"fcTL", b"IEND") and control is not None and pieces:
            state.size = state.size or _canvas_size(ihdr)
            _check_region(control, state.size)  # before decoding: an fcTL may declare any size
            yield state.draw(_decode(ihdr, shared, control, b"".join(pieces)), control), control.duration
            count += 1
            control, pieces = None, []
        if kind == b"fcTL":
            control = _control(body)
        elif kind == b"IDAT" and control is not None:
            pieces.append(body)  # IDAT after an fcTL: the default image is frame 0
        elif kind == b"fdAT" and control is not None:
            pieces.append(body[4:])  # after the sequence number
    if count < declared:
        raise _corrupt(f"acTL declares {declared} frames, {count} found")


def _canvas_size(ihdr: bytes) -> tuple[int, int]:
    if len(ihdr) < 13:
        raise _corrupt("IHDR is missing or short")
    width, height = struct.unpack_from(">II", ihdr)
    return width, height


def _check_region(control: _Control, size: tuple[int, int]) -> None:
    """The specification's rule: every frame lies inside the canvas, and is not empty."""
    if control.width == 0 or control.height == 0 or control.x + control.width > size[0] or control.y + control.height > size[1]:
        raise _corrupt(f"a {control.width}x{control.height} frame at ({control.x}, {control.y}) is outside the {size[0]}x{size[1]} canvas")


class _Canvas:
    """The output buffer of the APNG specification, with dispose and blend."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self.canvas: Image.Image | None = None
        self.after: tuple[_Control, Image.Image | None] | None = None  # disposal due before the next frame
        self.drawn = False

    def draw(self, region: Image.Image, control: _Control) -> Image.Image:
        assert self.size is not None
        if self.canvas is None:
            self.canvas = Image.new("RGBA", self.size, (0, 0, 0, 0))
        box = (control.x, control.y, control.x + control.width, control.y + control.height)
        self._dispose()
        dispose = control.dispose
        if dispose == _DISPOSE_PREVIOUS and not self.drawn:
            dispose = _DISPOSE_BACKGROUND  # on the first frame, "previous" means background
        saved = self.canvas.crop(box) if dispose == _DISPOSE_PREVIOUS else None
        if control.blend == _BLEND_SOURCE:
            self.canvas.paste(region, box[:2])
        else:
            self.canvas.alpha_composite(region, box[:2])
        self.after = (_Control(control.width, control.height, control.x, control.y, 0, dispose, 0), saved)
        self.drawn = True
        return self.canvas.copy()

    def _dispose(self) -> None:
        if self.after is None or self.canvas is None:
            return
        control, saved = self.after
        box = (control.x, control.y, control.x + control.width, control.y + control.height)
        if control.dispose == _DISPOSE_BACKGROUND:
            self.canvas.paste((0, 0, 0, 0), box)
        elif control.dispose == _DISPOSE_PREVIOUS and saved is not None:
            self.canvas.paste(saved, box[:2])
        self.after = None
