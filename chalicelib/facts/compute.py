"""All the facts of one image, from the small upright sRGB copy the renderer already made."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from chalicelib.facts import blurhash, colour, phash

# The facts need no more than this: a larger copy is box-reduced first (cheap, and the
# linear-light average BlurHash needs is still taken from these pixels).
WORK_SIDE = 256


@dataclass(frozen=True)
class Placeholder:
    blurhash: str
    dominant_color: str  # "#rrggbb"
    lqip: str  # data: URI

    def as_dict(self) -> dict[str, str]:
        return {"blurhash": self.blurhash, "dominant_color": self.dominant_color, "lqip": self.lqip}


@dataclass(frozen=True)
class Facts:
    placeholder: Placeholder
    phash: str  # 16 lowercase hex digits


def _flat_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))  # as the JPEG renditions show it
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def work_copy(image: Image.Image) -> Image.Image:
    """RGB, at most WORK_SIDE px a side (an integer box reduction: no resampling cost)."""
    factor = max(1, max(image.size) // WORK_SIDE)
    small = image.reduce(factor) if factor > 1 else image
    return _flat_rgb(small)


def compute_facts(image: Image.Image) -> Facts:
    """Placeholder and perceptual hash of an upright sRGB image (best: a copy of 64-512 px)."""
    small = work_copy(image)
    placeholder = Placeholder(blurhash=blurhash.encode(small), dominant_color=colour.dominant_color(small), lqip=colour.lqip(small))
    return Facts(placeholder=placeholder, phash=phash.phash(small))
