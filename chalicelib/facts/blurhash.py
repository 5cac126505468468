"""BlurHash (https://blurha.sh) encoder: the same string as the reference implementation.

Written here rather than calling the pure-Python `blurhash` package on every pixel: the
package does ~W*H*X*Y*3 Python multiplications (about 0.2 s on 64x64), this one converts to
linear light with a Pillow lookup table, averages down to a 32 px grid in linear light (so the
DC term stays the image's average colour in linear light, as the spec defines it) and then
sums the cosines separably. tests/unit/test_facts.py checks it against the package.
"""

from __future__ import annotations

import math
from typing import cast

from PIL import Image

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
GRID = 32  # the linear-light copy the components are summed over: enough for 4x4 cosines


def _srgb_to_linear(value: int) -> float:
    v = value / 255.0
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_TO_LINEAR = [_srgb_to_linear(v) for v in range(256)]


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5)


def _base83(value: int, length: int) -> str:
    return "".join(_ALPHABET[value // 83 ** (length - i) % 83] for i in range(1, length + 1))


def components_for(size: tuple[int, int]) -> tuple[int, int]:
    """4x3 for a landscape (or square) image, 3x4 for a portrait one."""
    return (4, 3) if size[0] >= size[1] else (3, 4)


def linear_planes(image: Image.Image, grid: int = GRID) -> tuple[list[list[float]], tuple[int, int]]:
    """R, G, B in linear light on a grid of at most `grid` px a side (box-averaged in linear
    light), and the grid's size."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    scale = min(1.0, grid / max(rgb.size))
    size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
    planes = []
    for band in rgb.split():
        linear = band.point(_TO_LINEAR, "F")
        planes.append(cast(list[float], list(linear.resize(size, Image.Resampling.BOX).get_flattened_data())))
    return planes, size


def encode(image: Image.Image, components: tuple[int, int] | None = None) -> str:
    """The BlurHash of an RGB image (best given a small copy: it is averaged to 32 px first)."""
    planes, (width, height) = linear_planes(image)
    cx, cy = components or components_for(image.size)
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(cx)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)] for j in range(cy)]
    # rows[c][i][y] = sum over x of cos_x[i][x] * plane_c[y][x]
    rows = [[_row_sums(plane, width, height, basis) for basis in cos_x] for plane in planes]
    factors: list[tuple[float, float, float]] = []
    for j in range(cy):
        for i in range(cx):
            norm = (1.0 if i == 0 and j == 0 else 2.0) / (width * height)
            r, g, b = (norm * sum(s * c for s, c in zip(rows[k][i], cos_y[j], strict=True)) for k in range(3))
            factors.append((r, g, b))
    return _pack(factors, cx, cy)


def _row_sums(plane: list[float], width: int, height: int, basis: list[float]) -> list[float]:
    return [sum(p * c for p, c in zip(plane[y * width : (y + 1) * width], basis, strict=True)) for y in range(height)]


def _pack(factors: list[tuple[float, float, float]], cx: int, cy: int) -> str:
    dc, ac = factors[0], factors[1:]
    max_ac = max((abs(v) for f in ac for v in f), default=0.0)
    quant_max = int(max(0, min(82, math.floor(max_ac * 166 - 0.5)))) if ac else 0
    ac_norm = (quant_max + 1) / 166.0
    text = _base83((cx - 1) + (cy - 1) * 9, 1) + _base83(quant_max, 1)
    text += _base83((_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]), 4)
    for r, g, b in ac:
        q = [int(max(0.0, min(18.0, math.floor(math.copysign(abs(v / ac_norm) ** 0.5, v) * 9.0 + 9.5)))) for v in (r, g, b)]
        text += _base83(q[0] * 361 + q[1] * 19 + q[2], 2)
    return text


def average_colour(blurhash: str) -> tuple[int, int, int]:
    """The DC term (average colour, sRGB) a BlurHash carries."""
    value = 0
    for ch in blurhash[2:6]:
        value = value * 83 + _ALPHABET.index(ch)
    return value >> 16, (value >> 8) & 255, value & 255
