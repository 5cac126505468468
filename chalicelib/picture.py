"""Responsive-image markup from an image's renditions: `srcset` per format and a ready-to-paste
`<picture>`, sources in the order browsers should try them (AVIF, WebP, then JPEG in <img>).

An animated source's moving renditions (animated WebP) come first in its `<picture>`: AVIF
and JPEG renditions are stills, so a browser that can play WebP gets the animation and
others get the first frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from chalicelib.presets import Profile

# The order of `srcset` keys and of <source> elements: smallest files first.
PREFERENCE = ("avif", "webp", "jpeg", "png")
MIME = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
# A default for full-width-on-phones, column-on-desktop layouts; adjust it in the pasted HTML.
DEFAULT_SIZES = "(max-width: 1024px) 100vw, 1024px"


def srcsets(profile: Profile, renditions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """`{"avif": "url 320w, url 1024w", "webp": ..., "jpeg": ...}` for <source srcset> and
    <img srcset>; animated renditions under `webp_animated`. Cover crops (the square
    thumbnail) change the framing, so they are left out; one URL per width."""
    cropped = {p.name for p in profile.presets if p.fit == "cover"}
    by_format: dict[str, dict[int, str]] = {}
    for r in sorted(renditions, key=lambda r: r.get("width") or 0):
        if r.get("preset") in cropped or not r.get("width"):
            continue
        name = str(r["format"]).lower() + ("_animated" if r.get("animated") else "")
        by_format.setdefault(name, {}).setdefault(int(r["width"]), r["url"])
    order = [f"{fmt}_animated" for fmt in PREFERENCE] + list(PREFERENCE)
    ordered = sorted(by_format, key=lambda name: (order.index(name) if name in order else len(order), name))
    return {name: ", ".join(f"{url} {width}w" for width, url in by_format[name].items()) for name in ordered}


def picture(renditions: Sequence[Mapping[str, Any]], srcset: Mapping[str, str], sizes: str = DEFAULT_SIZES) -> str | None:
    """A `<picture>` element to paste into a page, or None when there is nothing to show.
    The <img> carries the largest fallback's width and height, so the browser reserves the
    right box before any byte arrives (no layout shift)."""
    fallback_format = next((fmt for fmt in ("jpeg", "png", "webp") if fmt in srcset), None)
    if fallback_format is None:
        return None
    largest = max(
        (r for r in renditions if str(r.get("format")).lower() == fallback_format and not r.get("animated") and r.get("width")),
        key=lambda r: int(r["width"]),
        default=None,
    )
    if largest is None:
        return None
    animated = [name for name in srcset if name.endswith("_animated")]
    stills = [fmt for fmt in PREFERENCE if fmt in srcset and fmt != fallback_format]
    sources = [(MIME[name.removesuffix("_animated")], srcset[name]) for name in animated]
    if not animated:  # AVIF and WebP stills would stop the animation: only for still images
        sources += [(MIME[fmt], srcset[fmt]) for fmt in stills]
    attr = escape(sizes, quote=True)
    parts = [f'<source type="{mime}" srcset="{escape(urls, quote=True)}" sizes="{attr}">' for mime, urls in sources]
    parts.append(
        f'<img src="{escape(str(largest["url"]), quote=True)}" srcset="{escape(srcset[fallback_format], quote=True)}" sizes="{attr}" '
        f'width="{int(largest["width"])}" height="{int(largest["height"])}" alt="" loading="lazy" decoding="async">'
    )
    return "<picture>" + "".join(parts) + "</picture>"
