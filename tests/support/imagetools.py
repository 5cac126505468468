"""Helpers for tests that look at pixels and bytes."""

from __future__ import annotations

import io
import math
import struct
import zlib

from PIL import Image, ImageChops, ImageStat

from chalicelib.imaging import codec
from chalicelib.presets import Profile

LIMITS = codec.DecodeLimits(max_pixels=50_000_000, max_frames=1000)


def open_bytes(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255, after bringing b to a's size."""
    a = a.convert("RGB")
    b = b.convert("RGB").resize(a.size, Image.Resampling.LANCZOS)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def psnr(a: Image.Image, b: Image.Image) -> float:
    a = a.convert("RGB")
    b = b.convert("RGB").resize(a.size, Image.Resampling.LANCZOS)
    mse = sum(v**2 for v in ImageStat.Stat(ImageChops.difference(a, b)).rms) / 3
    return 99.0 if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def metadata_markers(data: bytes) -> list[str]:
    """Which metadata containers appear in an encoded file (by its bytes, not by Pillow)."""
    found = []
    if data.startswith(b"\xff\xd8"):
        # Walk JPEG markers up to the start of scan.
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                break
            marker = data[pos + 1]
            if marker == 0xDA:
                break
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            segment = data[pos + 4 : pos + 2 + length]
            if marker == 0xE1 and segment.startswith(b"Exif"):
                found.append("EXIF")
            elif marker == 0xE1 and b"http://ns.adobe.com/xap" in segment[:40]:
                found.append("XMP")
            elif marker == 0xE2 and segment.startswith(b"ICC_PROFILE"):
                found.append("ICC")
            elif marker == 0xED:
                found.append("IPTC")
            elif marker == 0xFE:
                found.append("COM")
            pos += 2 + length
    elif data.startswith(b"RIFF"):
        for chunk, name in ((b"EXIF", "EXIF"), (b"XMP ", "XMP"), (b"ICCP", "ICC")):
            if chunk in data[12:]:
                found.append(name)
    elif data.startswith(b"\x89PNG"):
        for chunk, name in ((b"eXIf", "EXIF"), (b"iCCP", "ICC"), (b"tEXt", "TEXT"), (b"zTXt", "TEXT"), (b"iTXt", "TEXT")):
            if chunk in data:
                found.append(name)
    return found


def render_all(data: bytes, profile: Profile, stem: str = "photo", workers: int = 2):  # type: ignore[no-untyped-def]
    from chalicelib.imaging import render

    return render.render(data, profile, LIMITS, stem, workers=workers)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries one tiny IDAT: a decompression bomb shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
