"""Dominant colour and the tiny inline preview (LQIP)."""

from __future__ import annotations

import base64
import io
import math
from typing import cast

from PIL import Image, ImageFilter

PALETTE = 8  # median-cut boxes, then merged when close
MERGE_DISTANCE = 64.0  # RGB distance under which two boxes are one colour
COLOUR_SIDE = 64
LQIP_SIDE = 16
LQIP_MAX_CHARS = 1024


def _fit(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(size, Image.Resampling.BOX)


def dominant_color(image: Image.Image) -> str:
    """`#rrggbb` of the largest colour cluster (by pixel count) of an RGB image, not the mean.

    Median cut splits a large noisy area into several boxes (a sky into shades of blue), so
    boxes closer than MERGE_DISTANCE are counted together before the largest is taken.
    """
    small = _fit(image.convert("RGB"), COLOUR_SIDE)
    quantized = small.quantize(colors=PALETTE, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    groups: list[tuple[list[int], tuple[int, ...]]] = []  # ([count, r, g, b sums], first colour)
    counts = cast(list[tuple[int, int]], quantized.getcolors(PALETTE) or [])  # (pixels, palette index)
    for count, index in sorted(counts, reverse=True):
        rgb = tuple(palette[3 * index : 3 * index + 3]) or (0, 0, 0)
        group = next((g for g in groups if math.dist(g[1], rgb) <= MERGE_DISTANCE), None)
        if group is None:
            group = ([0, 0, 0, 0], rgb)
            groups.append(group)
        sums = group[0]
        sums[0] += count
        for channel in range(3):
            sums[channel + 1] += count * rgb[channel]
    if not groups:
        return "#000000"
    total, *channels = max(groups)[0]
    return "#" + "".join(f"{round(c / total):02x}" for c in channels)


def lqip(image: Image.Image) -> str:
    """A `data:image/webp;base64,...` URI of a blurred preview at most 16 px a side (< 1 KB)."""
    small = _fit(image.convert("RGB"), LQIP_SIDE).filter(ImageFilter.GaussianBlur(0.8))
    for quality in (40, 20, 5):
        buffer = io.BytesIO()
        small.save(buffer, "WEBP", quality=quality, method=4)
        uri = "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        if len(uri) <= LQIP_MAX_CHARS:
            return uri
    return uri  # pragma: no cover - 16x16 WebP at q5 is ~100 bytes
