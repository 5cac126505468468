"""GIF frames composited as browsers show them.

Each frame's own rectangle is decoded by Pillow from a one-frame GIF rebuilt from its blocks
(screen = the rectangle, the global or local palette, its transparent index); disposal is
applied here: 2 clears the rectangle to transparent (what browsers do, whatever the
background colour), 3 restores what was there before. Pillow 13's own compositing pastes a
transparent disposal into an RGB canvas when no frame so far used transparency, and the
cleared area came out opaque black.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

from PIL import Image

from chalicelib.models import ErrorCode, RejectedInput


def _sub_blocks_end(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    raise RejectedInput(ErrorCode.CORRUPT_IMAGE, "GIF data sub-blocks are truncated")


def frames(data: bytes) -> Iterator[tuple[Image.Image, int]]:
    """(RGBA canvas, milliseconds) for each frame, one at a time."""
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    palette_end = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    header = data[:13]
    global_palette = data[13:palette_end]
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pos, control = palette_end, b""
    pending: tuple[int, tuple[int, int, int, int], Image.Image | None] | None = None
    while pos < len(data) and data[pos] != 0x3B:
        block = data[pos]
        if block == 0x21:
            end = _sub_blocks_end(data, pos + 2)
            if data[pos + 1] == 0xF9:
                control = data[pos:end]  # graphic control: delay, disposal, transparency
            pos = end
            continue
        if block != 0x2C:
            pos += 1  # a stray byte between blocks: skipped, as Pillow skips it
            continue
        if pos + 10 > len(data):
            break
        left, top, w, h, local = struct.unpack_from("<HHHHB", data, pos + 1)
        start = pos
        pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
        pos = _sub_blocks_end(data, pos + 1)
        one = header[:6] + struct.pack("<HH", w, h) + header[10:13] + global_palette + control
        one += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, local) + data[start + 10 : pos] + b"\x3b"
        region = Image.open(io.BytesIO(one), formats=["GIF"])
        region.load()
        rgba = region.convert("RGBA")
        if pending is not None:  # the previous frame's disposal, due now
            _dispose(canvas, *pending)
        disposal = (control[3] >> 2) & 7 if len(control) > 3 else 0
        box = (left, top, left + w, top + h)
        saved = canvas.crop(box) if disposal == 3 else None
        if left < width and top < height:  # a frame may reach past the screen: the part on it is drawn
            canvas.alpha_composite(rgba.crop((0, 0, min(w, width - left), min(h, height - top))), (left, top))
        delay = struct.unpack_from("<H", control, 4)[0] * 10 if len(control) > 5 else 0
        pending = (disposal, box, saved)
        control = b""
        yield canvas.copy(), delay


def _dispose(canvas: Image.Image, disposal: int, box: tuple[int, int, int, int], saved: Image.Image | None) -> None:
    if disposal == 2:
        canvas.paste((0, 0, 0, 0), box)
    elif disposal == 3 and saved is not None:
        canvas.paste(saved, box[:2])
