"""An `nclx` colour description (HEIF/AVIF: primaries + transfer as code points, no ICC) turned
into the ICC matrix/TRC profile it stands for, so the one ICC -> sRGB path converts it.

Pillow's ImageCms can create only sRGB, LAB and XYZ profiles, so this one is built byte by
byte: header, white point, the three primaries as D50-adapted XYZ (Bradford) and one tone
curve. HDR transfers (PQ, HLG) are not tone-mapped here: the pixels are left as decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from functools import lru_cache

_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
_SRGB_PRIMARIES = (1, 2)  # BT.709 (= sRGB's), unspecified
_SRGB_TRANSFERS = (2, 13)  # unspecified, sRGB
# H.273 transfer characteristics -> ICC parametric curve type 3 (g, a, b, c, d) or a gamma.
_CURVES: dict[int, tuple[float, ...]] = {
    13: (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045),  # sRGB
    **dict.fromkeys((1, 6, 14, 15), (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081)),  # BT.709 / BT.601 / BT.2020
    4: (2.2,),
    5: (2.8,),
    8: (1.0,),  # linear
}
Matrix = Sequence[Sequence[float]]


def icc_for(nclx: Mapping[str, object]) -> bytes | None:
    """The ICC profile equivalent to `nclx` (pi-heif's dict), or None when the pixels are
    already sRGB or the transfer is one we do not convert (PQ, HLG)."""
    try:
        primaries, transfer = int(str(nclx["color_primaries"])), int(str(nclx["transfer_characteristics"]))
        xy = tuple(float(str(nclx[f"color_primary_{c}_{axis}"])) for c in ("red", "green", "blue", "white") for axis in "xy")
    except (KeyError, ValueError):
        return None
    if transfer == 2:
        transfer = 13  # unspecified: sRGB, as browsers assume
    if (primaries in _SRGB_PRIMARIES and transfer in _SRGB_TRANSFERS) or transfer not in _CURVES:
        return None
    if any(v <= 0 for v in xy[1::2]):
        return None
    return _profile(xy, _CURVES[transfer], f"nclx {primaries}/{transfer}")


@lru_cache(maxsize=16)
def _profile(xy: tuple[float, ...], curve: tuple[float, ...], name: str) -> bytes:
    columns = _rgb_to_xyz(xy)
    adapt = _adaptation((xy[6] / xy[7], 1.0, (1 - xy[6] - xy[7]) / xy[7]))
    red, green, blue = (_apply(adapt, [columns[row][i] for row in range(3)]) for i in range(3))
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(_D50)), (b"rXYZ", _xyz(red)), (b"gXYZ", _xyz(green)), (b"bXYZ", _xyz(blue))]
    tone = _curve(curve)
    tags += [(b"rTRC", tone), (b"gTRC", tone), (b"bTRC", tone)]
    table, body, offset = struct.pack(">I", len(tags)), b"", 128 + 4 + 12 * len(tags)
    for signature, data in tags:
        padded = data + b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(padded))
        body += padded
    header = struct.pack(">I", 128 + len(table) + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12
    header += b"acsp" + b"\0" * 28 + _xyz(_D50)[8:] + b"\0" * 48
    return header + table + body


def _rgb_to_xyz(xy: tuple[float, ...]) -> list[list[float]]:
    """The RGB -> XYZ matrix of the primaries, scaled so that RGB white maps to the white point."""
    cols = [[x / y, 1.0, (1 - x - y) / y] for x, y in zip(xy[0:6:2], xy[1:6:2], strict=True)]
    base = [[cols[c][r] for c in range(3)] for r in range(3)]
    white = [xy[6] / xy[7], 1.0, (1 - xy[6] - xy[7]) / xy[7]]
    scale = _apply(_inverse(base), white)
    return [[base[r][c] * scale[c] for c in range(3)] for r in range(3)]


def _adaptation(white: Sequence[float]) -> list[list[float]]:
    """Bradford chromatic adaptation from `white` to D50 (what ICC colorants are given in)."""
    source, target = _apply(_BRADFORD, white), _apply(_BRADFORD, _D50)
    gain = [[target[i] / source[i] if i == j else 0.0 for j in range(3)] for i in range(3)]
    return _multiply(_inverse(_BRADFORD), _multiply(gain, _BRADFORD))


def _apply(m: Matrix, v: Sequence[float]) -> list[float]:
    return [sum(m[r][c] * v[c] for c in range(3)) for r in range(3)]


def _multiply(a: Matrix, b: Matrix) -> list[list[float]]:
    return [[sum(a[r][k] * b[k][c] for k in range(3)) for c in range(3)] for r in range(3)]


def _inverse(m: Matrix) -> list[list[float]]:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    adj = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ]
    return [[value / det for value in row] for row in adj]


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(v: Sequence[float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(x) for x in v)


def _curve(params: tuple[float, ...]) -> bytes:
    if len(params) == 1:  # a pure gamma, as an 8.8 fixed-point value
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(params[0] * 256)) + b"\0\0"
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(p) for p in params)


def _desc(text: str) -> bytes:
    ascii_z = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_z)) + ascii_z + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
