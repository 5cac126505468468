"""Perceptual hash (DCT pHash); its distance and bands are in chalicelib/duplicates.py.

pHash: the image in grey at 32x32, the 8x8 lowest frequencies of its 2-D DCT-II, one bit per
coefficient: above their median or not (the hash `imagehash.phash` computes). Only the 64
coefficients kept are summed, separably: ~10k multiplications, about 1 ms in pure Python.
The choice of pHash over dHash and of the distance are measured (bench/facts.py, test_facts).
"""

from __future__ import annotations

import math

from PIL import Image

SIZE = 32  # side of the grey copy
LOW = 8  # side of the block of low frequencies kept: 64 bits
BITS = LOW * LOW
_COS = [[math.cos(math.pi * k * (2 * n + 1) / (2 * SIZE)) for n in range(SIZE)] for k in range(LOW)]


def phash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 lowercase hex digits (image: upright, any size)."""
    grey = image.convert("L").resize((SIZE, SIZE), Image.Resampling.BOX)
    pixels = list(grey.tobytes())
    rows = [pixels[y * SIZE : (y + 1) * SIZE] for y in range(SIZE)]
    # Horizontal pass: for each row, its LOW lowest frequencies; then vertical on those columns.
    horizontal = [[sum(p * c for p, c in zip(row, basis, strict=True)) for basis in _COS] for row in rows]
    coefficients = [sum(horizontal[y][u] * basis[y] for y in range(SIZE)) for basis in _COS for u in range(LOW)]
    median = sorted(coefficients)[BITS // 2 - 1 : BITS // 2 + 1]
    threshold = (median[0] + median[1]) / 2
    value = 0
    for coefficient in coefficients:
        value = (value << 1) | (coefficient > threshold)
    return f"{value:016x}"
