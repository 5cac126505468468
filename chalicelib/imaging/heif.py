"""HEIC/HEIF input: recognised by its `ftyp` brands, checked from the box headers before any
pixel is decoded, decoded by pi-heif (libheif + libde265, no encoder).

pi-heif is imported only when a HEIF arrives: it loads libheif (~40 ms), which a cold start
of the API or of a JPEG upload must not pay for.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from chalicelib.models import ErrorCode, RejectedInput

# `ftyp` brands of HEVC-coded HEIF (iPhone photos: major brand `heic`, compatible `mif1`).
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})
# AV1-coded HEIF is AVIF: Pillow's own plugin decodes it (libavif), whatever the major brand.
AVIF_BRANDS = frozenset({b"avif", b"avis"})
# Boxes deeper than this, or more of them than this, are not a photo but an attack on the parser.
_MAX_DEPTH = 4
_MAX_BOXES = 10_000


def brand(data: bytes) -> str | None:
    """ "HEIF", "AVIF" or None, from the `ftyp` box: its major brand, and for the generic image
    brands (`mif1`, `msf1`) the compatible brands that say which codec is inside."""
    if data[4:8] != b"ftyp" or len(data) < 16:
        return None
    size = struct.unpack_from(">I", data)[0]
    major = data[8:12]
    compatible = {data[i : i + 4] for i in range(16, min(size, len(data), 16 + 4 * 64) - 3, 4)}
    if major in AVIF_BRANDS:
        return "AVIF"
    if major in (b"mif1", b"msf1") and compatible & AVIF_BRANDS and not compatible & (HEIF_BRANDS - {b"mif1", b"msf1"}):
        return "AVIF"
    return "HEIF" if major in HEIF_BRANDS else None


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int  # first byte of the payload
    end: int


def _boxes(data: bytes, start: int, end: int, *, top: bool = False) -> Iterator[_Box]:
    """The boxes in data[start:end]. A box that runs past its parent, or declares fewer bytes
    than its own header, is corrupt: libheif would refuse it later, after more work."""
    pos, count = start, 0
    while pos < end:
        count += 1
        if end - pos < 8 or count > _MAX_BOXES:
            raise _corrupt("box header truncated" if end - pos < 8 else f"more than {_MAX_BOXES} boxes")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:  # 64-bit size follows
            if end - pos < 16:
                raise _corrupt("box header truncated")
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0 and top:  # "to the end of the file": only the last top-level box
            size = end - pos
        if size < header:
            raise _corrupt(f"box {kind!r} declares {size} bytes, less than its own header")
        if pos + size > end:
            raise _corrupt(f"box {kind!r} runs past the end of its container (truncated file?)")
        yield _Box(kind, pos + header, pos + size)
        pos += size


def _corrupt(why: str) -> RejectedInput:
    return RejectedInput(ErrorCode.CORRUPT_IMAGE, f"HEIF container is corrupt: {why}")


def _child(data: bytes, parent: _Box, kind: bytes, skip: int = 0) -> _Box | None:
    return next((box for box in _boxes(data, parent.start + skip, parent.end) if box.kind == kind), None)


def primary_size(data: bytes) -> tuple[int, int]:
    """Width and height of the primary image as its `ispe` property declares them, read from
    the box headers alone (ftyp, meta > pitm, iprp > ipco + ipma). Raises RejectedInput."""
    meta = next((box for box in _boxes(data, 0, len(data), top=True) if box.kind == b"meta"), None)
    if meta is None:
        raise _corrupt("no meta box")
    _check_item_strings(data, _child(data, meta, b"iinf", skip=4))
    pitm = _child(data, meta, b"pitm", skip=4)  # meta is a FullBox: 4 bytes of version and flags
    iprp = _child(data, meta, b"iprp", skip=4)
    if pitm is None or iprp is None:
        raise _corrupt("no primary item (pitm) or no item properties (iprp)")
    primary = _read_uint(data, pitm.start + 4, 2 if data[pitm.start] == 0 else 4, pitm.end)
    ipco = _child(data, iprp, b"ipco")
    ipma = _child(data, iprp, b"ipma")
    if ipco is None or ipma is None:
        raise _corrupt("no item property container (ipco) or associations (ipma)")
    properties = list(_boxes(data, ipco.start, ipco.end))
    for index in _associations(data, ipma, primary):
        if 1 <= index <= len(properties) and properties[index - 1].kind == b"ispe":
            ispe = properties[index - 1]
            if ispe.end - ispe.start < 12:
                raise _corrupt("ispe box truncated")
            width, height = struct.unpack_from(">II", data, ispe.start + 4)
            return width, height
    raise _corrupt("the primary image declares no size (ispe)")


def _check_item_strings(data: bytes, iinf: _Box | None) -> None:
    """Item types, names and MIME content types must be UTF-8: pi-heif 1.4 turns them into
    Python strings without checking, and a non-UTF-8 content type crashed the process
    (segmentation fault, found by the fuzz test) instead of raising."""
    if iinf is None:
        return
    skip = 4 + (2 if data[iinf.start] == 0 else 4)  # FullBox header, then the entry count
    for infe in _boxes(data, iinf.start + skip, iinf.end):
        if infe.kind != b"infe" or infe.end - infe.start < 4:
            continue
        version = data[infe.start]
        fixed = 4 + (4 if version < 2 else (8 if version == 2 else 10))  # ids, protection index, item type
        texts = data[infe.start + fixed : infe.end].split(b"\0")
        if version >= 2:
            texts.append(data[infe.start + fixed - 4 : infe.start + fixed])
        try:
            for text in texts:
                text.decode()
        except UnicodeDecodeError:
            raise _corrupt("an item's type, name or content type is not UTF-8") from None


def _read_uint(data: bytes, pos: int, size: int, end: int) -> int:
    if pos + size > end:
        raise _corrupt("box payload truncated")
    return int.from_bytes(data[pos : pos + size], "big")


def _associations(data: bytes, ipma: _Box, item: int) -> list[int]:
    """Property indices (1-based) that `ipma` associates with `item`."""
    version, flags = data[ipma.start], _read_uint(data, ipma.start + 1, 3, ipma.end)
    id_size, index_size = (2 if version < 1 else 4), (2 if flags & 1 else 1)
    pos = ipma.start + 4
    entries = _read_uint(data, pos, 4, ipma.end)
    pos += 4
    for _ in range(min(entries, _MAX_BOXES)):
        item_id = _read_uint(data, pos, id_size, ipma.end)
        count = _read_uint(data, pos + id_size, 1, ipma.end)
        pos += id_size + 1
        mask = 0x7FFF if index_size == 2 else 0x7F  # the top bit marks an essential property
        indices = [_read_uint(data, pos + i * index_size, index_size, ipma.end) & mask for i in range(count)]
        pos += count * index_size
        if item_id == item:
            return indices
    return []


_registered = threading.Lock()
_ready = False


def register() -> None:
    """Load pi-heif and register its opener for HEIF only (never AVIF, which stays with
    Pillow's plugin), with thumbnails, depth maps and auxiliary images switched off: only the
    primary image is ever decoded."""
    global _ready  # noqa: PLW0603 - a process-wide, once-only registration
    with _registered:
        if _ready:
            return
        from pi_heif import register_heif_opener  # lazy: see the module docstring

        register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        _ready = True
