"""Dominant colour and the tiny inline preview (LQIP)."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageFilter

PALETTE = 6  # clusters: few enough that a sky is one cluster, not three shades of blue
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
    """`#rrggbb` of the largest colour cluster (by pixel count) of an RGB image, not the mean."""
    small = _fit(image.convert("RGB"), COLOUR_SIDE)
    quantized = small.quantize(colors=PALETTE, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = quantized.getcolors(PALETTE) or [(1, 0)]
    _, index = max(counts)
    r, g, b = palette[3 * index : 3 * index + 3] if len(palette) >= 3 * index + 3 else (0, 0, 0)
    return f"#{r:02x}{g:02x}{b:02x}"


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
