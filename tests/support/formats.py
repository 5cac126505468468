"""Real HEIC and animation test files, made here (nothing binary is committed but the small
fixtures): HEIC encoded by pillow-heif (a dev dependency; the pipeline decodes with pi-heif),
animations by Pillow's own GIF, PNG and WebP writers."""

from __future__ import annotations

import io
import struct

import pillow_heif
from PIL import Image, ImageDraw
from pillow_heif import as_plugin

# Only pillow-heif's *writer* is registered: its opener would replace pi-heif's (both are
# called "HEIF") and the tests would no longer decode the way Lambda does.
Image.register_save("HEIF", as_plugin._save_heif)
Image.register_save_all("HEIF", as_plugin._save_all_heif)

# The stored pixels of a phone photo whose EXIF/irot orientation is `key`: the upright image
# turned the other way, as the camera sensor saw it.
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def heic(image: Image.Image, quality: int = 90, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "HEIF", quality=quality, **params)
    return buffer.getvalue()


def phone_heic(upright: Image.Image, orientation: int) -> bytes:
    """What an iPhone writes: sideways pixels, an `irot` box that turns them upright, and an
    EXIF orientation tag saying the same thing again (for the stored pixels)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    data = heic(upright.transpose(_STORED[orientation]), quality=92, chroma=444, exif=exif.tobytes())
    assert b"irot" in data
    return data


def heic_10bit(size: tuple[int, int], rgb16: tuple[int, int, int]) -> bytes:
    """A 10-bit HEIC of one 16-bit colour (pillow-heif stores 16-bit input as 10-bit)."""
    raw = struct.pack("<HHH", *rgb16) * (size[0] * size[1])
    buffer = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB;16", size=size, data=raw).save(buffer, quality=95, chroma=444)
    return buffer.getvalue()


def heic_collection(colours: list[tuple[int, int, int]], primary: int) -> bytes:
    """Several top-level images (a burst), the primary one not the first."""
    heif_file = pillow_heif.from_pillow(Image.new("RGB", (64, 48), colours[0]))
    for colour in colours[1:]:
        heif_file.add_from_pillow(Image.new("RGB", (64, 48), colour))
    buffer = io.BytesIO()
    heif_file.save(buffer, quality=90, primary_index=primary)
    return buffer.getvalue()


def with_box_size(data: bytes, box: bytes, size: int) -> bytes:
    """`data` with the first `box` box's 32-bit size field rewritten."""
    at = data.find(box)
    return data[: at - 4] + struct.pack(">I", size) + data[at:]


def with_ispe(data: bytes, width: int, height: int) -> bytes:
    at = data.find(b"ispe")
    return data[: at + 8] + struct.pack(">II", width, height) + data[at + 16 :]


# --- animations -----------------------------------------------------------------------------


def moving_square_frames(count: int, size: tuple[int, int] = (120, 90)) -> list[Image.Image]:
    """RGB frames, each different: a square crossing a gradient (no two consecutive frames
    alike, so an encoder cannot merge any)."""
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    frames = []
    for i in range(count):
        frame = base.copy()
        x = (i * 7) % max(1, size[0] - 20)
        ImageDraw.Draw(frame).rectangle((x, 10, x + 20, 30), fill=((i * 40) % 256, 30, 200))
        frames.append(frame)
    return frames


def gif_disposal_transparency() -> tuple[bytes, list[Image.Image]]:
    """A 3-frame GIF that only composites right: frame 0 fills the canvas, frame 1 draws a red
    square at the left with disposal 2 (restore to background = transparent), frame 2 draws a
    green square at the right over a transparent rest. Returns the file and the frames a
    browser shows (RGBA)."""
    size = (64, 48)
    blue = (0, 0, 255, 255)
    clear = (0, 0, 0, 0)
    expected = [Image.new("RGBA", size, blue)]
    shown = Image.new("RGBA", size, blue)
    shown.paste((255, 0, 0, 255), (0, 0, 24, 24))
    expected.append(shown)
    after = expected[0].copy()  # frame 1 restored to background (transparent) where it drew
    after.paste(clear, (0, 0, 24, 24))
    after.paste((0, 255, 0, 255), (40, 24, 64, 48))
    expected.append(after)
    # Written block by block: Pillow's writer would optimise the frames into other rectangles.
    palette = bytes((0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 0, 0))  # 0 blue, 1 red, 2 green, 3 transparent
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *size, 0x81, 0, 0) + palette)
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    out += _gif_frame((0, 0, *size), 0, disposal=1, delay=10)
    # Frame 1 names a transparent index (as GIF tools write it): its disposal then clears to
    # transparent in Pillow as in browsers (without one Pillow would fill the background colour).
    out += _gif_frame((0, 0, 24, 24), 1, disposal=2, delay=20, transparent=3)
    out += _gif_frame((40, 24, 24, 24), 2, disposal=1, delay=30, transparent=3)
    out += b"\x3b"
    return bytes(out), expected


def _gif_frame(rect: tuple[int, int, int, int], index: int, *, disposal: int, delay: int, transparent: int | None = None) -> bytes:
    flags = (disposal << 2) | (1 if transparent is not None else 0)
    gce = b"\x21\xf9\x04" + struct.pack("<BHB", flags, delay, transparent or 0) + b"\x00"
    left, top, width, height = rect
    pixels = bytes([index]) * (width * height)
    return gce + b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0) + b"\x02" + _lzw(pixels)


def _lzw(pixels: bytes, min_code: int = 2) -> bytes:
    """Uncompressed GIF LZW: a clear code every few codes keeps the code width at 3 bits."""
    clear, end, width = 1 << min_code, (1 << min_code) + 1, min_code + 1
    codes: list[int] = []
    for i, value in enumerate(pixels):
        if i % 2 == 0:
            codes.append(clear)
        codes.append(value)
    codes.append(end)
    bits = 0
    count = 0
    for code in reversed(codes):
        bits = (bits << width) | code
        count += width
    stream = bits.to_bytes((count + 7) // 8, "little")
    return b"".join(bytes([len(part)]) + part for part in (stream[i : i + 255] for i in range(0, len(stream), 255))) + b"\x00"


def save_animation(frames: list[Image.Image], fmt: str, durations: list[int], loop: int | None = 0, **params: object) -> bytes:
    buffer = io.BytesIO()
    extra: dict[str, object] = {} if loop is None else {"loop": loop}
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=durations, **extra, **params)
    return buffer.getvalue()


def apng_blend_dispose() -> tuple[bytes, list[Image.Image]]:
    """A 3-frame APNG using OP_PREVIOUS disposal and OVER blending, with the frames shown."""
    size = (64, 48)
    first = Image.new("RGBA", size, (0, 0, 255, 255))
    half = Image.new("RGBA", size, (0, 0, 0, 0))
    half.paste((255, 0, 0, 128), (0, 0, 32, 48))  # half-transparent red, blended OVER blue
    third = Image.new("RGBA", size, (0, 0, 0, 0))
    third.paste((0, 255, 0, 255), (32, 0, 64, 48))
    data = save_animation(
        [first, half, third],
        "PNG",
        [100, 200, 300],
        disposal=[0, 2, 0],  # frame 1 is disposed to the previous canvas before frame 2
        blend=[0, 1, 1],  # OVER
        default_image=False,
    )
    blended = Image.alpha_composite(first, half)
    final = first.copy()
    final.paste((0, 255, 0, 255), (32, 0, 64, 48))
    return data, [first, blended, final]
