"""`srcset` and the ready-to-paste `<picture>` of GET /images/{id}."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from chalicelib import api
from chalicelib.picture import picture, srcsets
from chalicelib.presets import WEB


def rendition(fmt: str, width: int, *, animated: bool = False, preset: str | None = None) -> dict[str, Any]:
    ext = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif"}[fmt]
    suffix = ".animated" if animated else ""
    return {
        "preset": preset or f"w{width}_{fmt.lower()}{'_animated' if animated else ''}",
        "format": fmt,
        "width": width,
        "height": width * 3 // 4,
        "url": f"https://cdn.test/w{width}{suffix}.{ext}?a=1&b=2",
        **({"animated": True, "frames": 10} if animated else {}),
    }


STILLS = [rendition(fmt, w) for w in (320, 1024, 2048) for fmt in ("JPEG", "WEBP", "AVIF")] + [
    {"preset": "thumbnail", "format": "JPEG", "width": 150, "height": 150, "url": "t"}
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def test_srcset_lists_avif_then_webp_then_jpeg() -> None:
    sets = srcsets(WEB, STILLS)
    assert list(sets) == ["avif", "webp", "jpeg"]
    assert sets["avif"].endswith("w2048.avif?a=1&b=2 2048w") and " 150w" not in sets["jpeg"]  # the cover thumbnail is left out


def test_picture_is_ready_to_paste() -> None:
    sets = srcsets(WEB, STILLS)
    html = picture(STILLS, sets)
    assert html is not None and html.startswith("<picture>") and html.endswith("</picture>")
    tags = parse(html)
    assert [t for t, _ in tags] == ["picture", "source", "source", "img"]
    assert [a["type"] for t, a in tags if t == "source"] == ["image/avif", "image/webp"]
    img = tags[-1][1]
    assert (img["width"], img["height"]) == ("2048", "1536")  # the box is reserved: no layout shift
    assert img["src"] == "https://cdn.test/w2048.jpg?a=1&b=2" and img["srcset"] == sets["jpeg"]
    assert all(a["sizes"] for t, a in tags if t in ("source", "img"))
    assert "&amp;" in html and "?a=1&b=2" not in html  # attribute values are escaped


def test_animated_image_puts_the_animation_first_and_no_still_avif() -> None:
    renditions = [*STILLS, rendition("WEBP", 320, animated=True), rendition("WEBP", 1024, animated=True)]
    sets = srcsets(WEB, renditions)
    assert list(sets) == ["webp_animated", "avif", "webp", "jpeg"]
    assert "animated" in sets["webp_animated"] and "animated" not in sets["webp"]
    tags = parse(picture(renditions, sets) or "")
    assert [(t, a.get("type")) for t, a in tags] == [("picture", None), ("source", "image/webp"), ("img", None)]
    assert tags[1][1]["srcset"] == sets["webp_animated"]


def test_no_picture_without_renditions() -> None:
    assert picture([], {}) is None
    assert api.srcsets(WEB, []) == {}
