"""Decode with limits and encode without metadata.

The format is identified from the first bytes, never from the key or Content-Type, and
Pillow is only ever asked to open that one format: its other decoders (PSD, EPS, PDF, ...)
are never reached, so their CVEs are not our attack surface.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from chalicelib.imaging import heif, nclx
from chalicelib.models import ErrorCode, RejectedInput
from chalicelib.settings import DEFAULT_MAX_ANIMATION_PIXELS, Settings

try:  # AVIF decoding exists only where the Pillow wheel was built with libavif.
    from PIL import AvifImagePlugin  # noqa: F401

    _AVIF = True
except ImportError:  # pragma: no cover - depends on the wheel
    _AVIF = False

# Keep the plugin modules referenced: importing them registers the decoders we allow.
_PLUGINS = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin)

# HEIF is decoded by pi-heif, imported on the first HEIF upload (see imaging/heif.py).
ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF"} | ({"AVIF"} if _AVIF else set()))

# Errors Pillow raises for malformed files. TIFF's decoder can raise TypeError/KeyError,
# PNG chunks ValueError, truncated data OSError/EOFError, the AVIF plugin RuntimeError
# ("Failed to decode frame 0", found by the fuzz test): all mean "corrupt input".
DECODE_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, SyntaxError, RuntimeError, struct.error)

# Pillow's own text/ICC chunk limits, tightened: a zTXt or iCCP bomb must not inflate.
PngImagePlugin.MAX_TEXT_CHUNK = 1024 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024

_TEXT_LIMIT = "1 MiB per chunk / 4 MiB in all"

# Progressive JPEGs from cameras and encoders have about 10 scans; see _check_scans.
MAX_JPEG_SCANS = 256


@dataclass(frozen=True)
class DecodeLimits:
    """What a source may be, and how much of it is decoded."""

    max_pixels: int
    max_frames: int
    max_animation_pixels: int = DEFAULT_MAX_ANIMATION_PIXELS  # frames x width x height of a kept animation
    keep_animation: bool = True  # ANIMATION=keep: animated sources also get animated renditions

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(
            settings.max_source_pixels, settings.max_frames, settings.max_animation_pixels, keep_animation=settings.animation == "keep"
        )


def sniff_format(data: bytes) -> str | None:
    """The container format from magic bytes, or None if it is not one we recognise."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic TIFF and BigTIFF
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 26:
        return "BMP"
    if head[4:8] == b"ftyp":  # ISO-BMFF: HEIF or AVIF by the brands, not by the name
        return heif.brand(data[:4096])
    return None


_FOREIGN_SIGNATURES = {
    b"%PDF": "PDF",
    b"%!PS": "PostScript/EPS",
    b"\xc5\xd0\xd3\xc6": "EPS",
    b"8BPS": "PSD",
    b"<svg": "SVG",
    b"<?xm": "XML/SVG",
    b"\x00\x00\x01\x00": "ICO",
    b"icns": "ICNS",
    b"DDS ": "DDS",
    b"qoif": "QOI",
    b"v/1\x01": "OpenEXR",
    b"#?RA": "Radiance HDR",
    b"\xffO\xffQ": "JPEG 2000",
}
# 12-byte signature boxes of ISO-style containers that are not ISO media (no `ftyp` at 4).
_FOREIGN_BOXES = {b"\x00\x00\x00\x0cjP  \r\n\x87\n": "JPEG 2000", b"\x00\x00\x00\x0cJXL \r\n\x87\n": "JPEG XL"}
# `ftyp` brands people upload that are not images we decode, with the reason given.
_ISO_BRANDS = {
    b"crx ": "Canon CR3 raw files are not accepted",
    **dict.fromkeys((b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V "), "MP4/QuickTime video is not accepted"),
}


def _describe_unknown(data: bytes) -> RejectedInput:
    head = data[:4]
    stripped = data[:512].lstrip().lower()
    if stripped.startswith((b"<svg", b"<?xml", b"<!doctype svg")) or b"<svg" in stripped:
        return RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, "SVG is not accepted: upload a raster image (JPEG, PNG, WebP, GIF, TIFF, BMP)")
    # Formats we can name get `unsupported_format` and their name (an iPhone's HEIC, a JPEG XL
    # export) rather than "not a recognised image", which reads like a broken upload.
    name = _FOREIGN_SIGNATURES.get(head) or _FOREIGN_BOXES.get(data[:12]) or ("JPEG XL" if data[:2] == b"\xff\x0a" else None)
    if name:
        return RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, f"{name} files are not accepted")
    if data[4:8] == b"ftyp":
        if reason := _ISO_BRANDS.get(data[8:12]):
            return RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, reason)
        return RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, f"ISO media file ({data[8:12]!r}) is not an accepted image format")
    return RejectedInput(ErrorCode.NOT_AN_IMAGE, "the content is not a recognised image (checked by content, not by name)")


def open_image(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Open lazily (header only) and enforce format, pixel and frame limits before decoding."""
    fmt = _identify(data, limits)
    # Pillow checks its own bomb limit inside open(); align it with ours so its warning zone
    # (between 1x and 2x MAX_IMAGE_PIXELS) cannot be reached unchecked.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only `fmt`: the JPEG opener makes MPO images itself, and naming "MPO" (which has
            # no opener) turned every JPEG header Pillow refuses into KeyError('MPO').
            image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)):,} pixels" if declared else "its size"
        raise RejectedInput(ErrorCode.TOO_MANY_PIXELS, f"{fmt} declares {size}, over the limit of {limits.max_pixels:,}") from None
    except UnidentifiedImageError:
        if fmt == "JPEG" and (bits := _jpeg_precision(data)) not in (None, 8):
            raise RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, f"{bits}-bit JPEG is not supported: save it as 8-bit") from None
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"looks like {fmt} but its header cannot be read") from None
    except DECODE_ERRORS as exc:
        if "MAX_TEXT" in str(exc):  # zTXt/iTXt/iCCP chunks that inflate past the limits above
            raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"PNG metadata chunks inflate past {_TEXT_LIMIT}: refused as a bomb") from None
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{fmt} header is corrupt: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{fmt} declares an empty canvas {width}x{height}")
    if width * height > limits.max_pixels:
        raise RejectedInput(
            ErrorCode.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of {limits.max_pixels:,}",
        )
    if fmt != "HEIF":  # a HEIF collection (burst, Live Photo): only the primary image is read
        _check_frames(image, data, fmt, limits)
    _check_scans(data, fmt)
    return image


def _identify(data: bytes, limits: DecodeLimits) -> str:
    """The one format Pillow will be asked to open, from the content."""
    if not data:
        raise RejectedInput(ErrorCode.EMPTY_FILE, "the file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise _describe_unknown(data)
    if fmt not in ALLOWED_FORMATS:
        raise RejectedInput(ErrorCode.UNSUPPORTED_FORMAT, f"{fmt} is not supported by this build")
    if fmt == "HEIF":
        _check_heif_header(data, limits)
    return fmt


def _check_heif_header(data: bytes, limits: DecodeLimits) -> None:
    """The primary image's declared size (`ispe`) within the pixel limit, read from the box
    headers before libheif parses or decodes anything; then pi-heif is loaded."""
    width, height = heif.primary_size(data)
    if width <= 0 or height <= 0:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"HEIF declares an empty canvas {width}x{height}")
    if width * height > limits.max_pixels:
        raise RejectedInput(
            ErrorCode.TOO_MANY_PIXELS,
            f"HEIF declares {width}x{height} = {width * height:,} pixels, over the limit of {limits.max_pixels:,}",
        )
    heif.register()


def _jpeg_precision(data: bytes) -> int | None:
    """Sample precision from the first SOF marker (12-bit JPEGs exist: medical, scientific
    and some raw converters' output), walking the marker segments before the scan."""
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:  # no length
            pos += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[pos + 4]
        if marker == 0xDA:
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _check_frames(image: Image.Image, data: bytes, fmt: str, limits: DecodeLimits) -> None:
    """Frame/page count within MAX_FRAMES, counted in bounded time.

    Pillow's `n_frames` walks every GIF frame and every TIFF page in Python, however many
    there are (millions fit in 50 MB); those two are counted here by walking the blocks and
    stopping one past the limit. WebP, PNG (APNG) and MPO declare their count in a header.
    Every frame of a kept animation is decoded later, within MAX_ANIMATION_PIXELS (animation.py).
    """
    if fmt == "GIF":
        counted = _gif_frames(data, limits)
    elif fmt == "TIFF":
        counted = _tiff_pages(data, limits.max_frames)
    else:
        counted = 0
    if counted > limits.max_frames:
        raise RejectedInput(ErrorCode.TOO_MANY_FRAMES, f"more than {limits.max_frames} frames (the limit, MAX_FRAMES)")
    # Now bounded, Pillow's own count: the renderer reads it, and a later frame or page that
    # Pillow cannot parse (TIFF raises KeyError, TypeError, SyntaxError there) is corrupt input.
    try:
        frames = int(getattr(image, "n_frames", 1) or 1)
    except DECODE_ERRORS as exc:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{fmt} has a corrupt frame or page: {exc}") from None
    finally:
        with contextlib.suppress(*DECODE_ERRORS):
            image.seek(0)
    if frames > limits.max_frames:
        raise RejectedInput(ErrorCode.TOO_MANY_FRAMES, f"{frames} frames exceeds the limit of {limits.max_frames} (MAX_FRAMES)")


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position after a GIF data sub-block chain (length byte + data, ended by a 0 length)."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return end


def _gif_frames(data: bytes, limits: DecodeLimits) -> int:
    """Count GIF image descriptors up to max_frames + 1. Each frame's extent must also fit
    the pixel limit: Pillow grows the canvas to a later frame that overflows the screen."""
    if len(data) < 13:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, "GIF header is truncated")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data) and frames <= limits.max_frames:
        block = data[pos]
        if block == 0x21:  # extension: introducer, label, sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image descriptor
            left, top, width, height, local = struct.unpack_from("<HHHHB", data, pos + 1)
            frames += 1
            if (left + width) * (top + height) > limits.max_pixels:
                raise RejectedInput(
                    ErrorCode.TOO_MANY_PIXELS,
                    f"GIF frame {frames} reaches {left + width}x{top + height} pixels, over the limit of {limits.max_pixels:,}",
                )
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW minimum code size byte
        else:  # trailer (0x3B) or trailing garbage: Pillow stops reading there as well
            break
    return frames


def _tiff_pages(data: bytes, max_frames: int) -> int:
    """Count TIFF IFDs (pages) up to max_frames + 1, stopping at a loop or the end of data.
    BigTIFF (scanners, microscopes, GIS) has 8-byte counts and offsets and 20-byte entries."""
    order = "<" if data[:2] == b"II" else ">"
    count, pointer, entry = ("Q", "Q", 20) if data[2:4] in (b"+\x00", b"\x00+") else ("H", "I", 12)
    count_size, pointer_size = struct.calcsize(count), struct.calcsize(pointer)
    first_at = 8 if pointer == "Q" else 4
    offset = struct.unpack_from(order + pointer, data, first_at)[0] if len(data) >= first_at + pointer_size else 0
    seen: set[int] = set()
    pages = 0
    while offset and offset not in seen and offset + count_size <= len(data) and pages <= max_frames:
        seen.add(offset)
        pages += 1
        entries = struct.unpack_from(order + count, data, offset)[0]
        following = offset + count_size + entry * entries
        offset = struct.unpack_from(order + pointer, data, following)[0] if following + pointer_size <= len(data) else 0
    return pages


def _check_scans(data: bytes, fmt: str) -> None:
    """A progressive JPEG decodes the whole coefficient buffer once per scan: thousands of tiny
    scans make a small file take minutes (a CPU bomb libjpeg does not limit). Encoders write
    about 10; 0xFFDA cannot occur inside entropy-coded data (0xFF is stuffed), so counting
    the marker is exact enough."""
    if fmt == "JPEG" and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        raise RejectedInput(
            ErrorCode.CORRUPT_IMAGE, f"JPEG has {scans} scans (more than {MAX_JPEG_SCANS}): refused as a decoding-time bomb"
        )


def load(image: Image.Image, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode the first frame, at reduced DCT scale for JPEG when `draft_size` allows it."""
    try:
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            image.draft("RGB" if image.mode in ("RGB", "YCbCr") else image.mode, draft_size)
        image.load()
    except DECODE_ERRORS as exc:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{image.format} data is corrupt or truncated: {exc}") from None
    nclx_profile = image.info.get("nclx_profile") if image.format == "HEIF" and not image.info.get("icc_profile") else None
    # Colour given as nclx code points (no ICC): the equivalent profile, converted as for JPEG.
    if isinstance(nclx_profile, dict) and (icc := nclx.icc_for(nclx_profile)) is not None:
        image.info["icc_profile"] = icc
    return image


def encode(image: Image.Image, fmt: str, quality: int, options: dict[str, object]) -> bytes:
    """Encode with no metadata: no EXIF, XMP, ICC or comments, whatever `image.info` holds.

    Pillow falls back to `image.info` for JPEG comments and PNG ICC profiles, so each is
    overridden explicitly rather than trusting the caller to have cleared it.
    """
    params: dict[str, object] = dict(options)
    with _sink(fmt) as out:
        if fmt == "JPEG":
            image.save(out, "JPEG", quality=quality, exif=b"", comment=b"", icc_profile=None, **params)
        elif fmt == "WEBP":
            image.save(out, "WEBP", quality=quality, exif=b"", xmp=b"", icc_profile=b"", **params)
        elif fmt == "PNG":
            image.save(out, "PNG", icc_profile=None, **params)
        elif fmt == "AVIF":
            image.save(out, "AVIF", quality=quality, exif=b"", xmp=b"", icc_profile=b"", **params)
        else:  # pragma: no cover - presets validate formats
            raise ValueError(f"cannot encode {fmt}")
        if isinstance(out, io.BytesIO):
            return out.getvalue()
        out.seek(0)
        return out.read()


@contextlib.contextmanager
def _sink(fmt: str) -> Iterator[IO[bytes]]:
    """Where the encoder writes: for JPEG an in-memory file with a descriptor (memfd).

    Pillow holds the GIL for a whole JPEG encode into a BytesIO (an optimised or progressive
    JPEG is one call), so a 2048 px JPEG (~50 ms) stalled every other render thread; given a
    file descriptor it encodes with the GIL released, to the same bytes. WebP already
    releases the GIL and PNG yields it between chunks: they keep a BytesIO, which a full-size
    PNG of 100 MB must not be copied out of twice.
    """
    if fmt == "JPEG":
        try:
            fd = os.memfd_create("rendition", os.MFD_CLOEXEC)
        except (AttributeError, OSError):  # not Linux, or refused: same bytes, just serial
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "w+b") as file:
                yield file
            return
    yield io.BytesIO()
