"""Rendition presets are data: name, size, fit, format, quality. Profiles group them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

Fit = Literal["within", "cover"]
Format = Literal["JPEG", "WEBP", "PNG", "AVIF"]
Crop = Literal["centre", "smart"]

FORMATS: dict[str, tuple[str, str]] = {  # format -> (extension, content type)
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "PNG": ("png", "image/png"),
    "AVIF": ("avif", "image/avif"),
}
_FITS = ("within", "cover")
_CROPS = ("centre", "smart")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a width


class PresetError(ValueError):
    """A preset definition or profile name is invalid."""


@dataclass(frozen=True)
class Preset:
    """One rendition: target box (None = source size), fit, format and encoder settings.

    `within` scales to fit inside the box (either side may be None); `cover` fills the box
    and crops: the centre, or with `crop="smart"` the window with the most detail, colour
    and skin. Neither ever upscales: a `within` preset wider than the source is
    skipped unless `always` is set, in which case it is produced at source size.
    An `animated` preset (WebP, `within`) is made only from an animated source, with every
    frame; still sources, and ANIMATION=still, leave it out.
    """

    name: str
    format: Format
    width: int | None = None
    height: int | None = None
    fit: Fit = "within"
    quality: int = 82
    filename: str = "{name}.{ext}"  # may use {stem}, {name}, {ext}
    always: bool = False
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    crop: Crop = "centre"
    animated: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PresetError(f"preset name must be a non-empty string, not {self.name!r}")
        if self.format not in FORMATS:
            raise PresetError(f"preset {self.name!r}: format must be one of {sorted(FORMATS)}")
        self._check_fit()
        for side in (self.width, self.height):
            if side is not None and not (_is_int(side) and side > 0):
                raise PresetError(f"preset {self.name!r}: width and height must be positive integers, not {side!r}")
        if not (_is_int(self.quality) and 1 <= self.quality <= 100):
            raise PresetError(f"preset {self.name!r}: quality must be an integer 1..100, not {self.quality!r}")
        if not isinstance(self.filename, str) or "/" in self.filename or not self.filename:
            raise PresetError(f"preset {self.name!r}: filename must be a plain file name")
        try:
            self.filename.format(stem="x", name="x", ext="x")
        except (KeyError, IndexError, ValueError):
            raise PresetError(f"preset {self.name!r}: filename {self.filename!r} may use only {{stem}}, {{name}}, {{ext}}") from None
        self._check_flags()
        if not isinstance(self.options, Mapping):
            raise PresetError(f"preset {self.name!r}: options must be an object")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def _check_flags(self) -> None:
        if not isinstance(self.always, bool) or not isinstance(self.animated, bool):
            raise PresetError(f"preset {self.name!r}: always and animated must be true or false")
        if self.animated and (self.format != "WEBP" or self.fit != "within"):
            raise PresetError(f"preset {self.name!r}: animated presets are WEBP with fit 'within'")

    def _check_fit(self) -> None:
        if self.fit not in _FITS:
            raise PresetError(f"preset {self.name!r}: fit must be one of {_FITS}")
        if self.crop not in _CROPS:
            raise PresetError(f"preset {self.name!r}: crop must be one of {_CROPS}")
        if self.crop != "centre" and self.fit != "cover":
            raise PresetError(f"preset {self.name!r}: crop {self.crop!r} needs fit 'cover'")
        if self.fit == "cover" and not (self.width and self.height):
            raise PresetError(f"preset {self.name!r}: fit 'cover' needs both width and height")

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]

    def output_filename(self, stem: str) -> str:
        return self.filename.format(stem=stem, name=self.name, ext=self.extension)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)} | {"options": dict(self.options)}
        # Defaults are left out: profiles without smart crops or animation keep their version.
        if self.crop == "centre":
            del data["crop"]
        if not self.animated:
            del data["animated"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        if not isinstance(data, Mapping):
            raise PresetError(f"a preset must be an object, not {data!r}")
        known = {"name", "format", "width", "height", "fit", "quality", "filename", "always", "options", "crop", "animated"}
        unknown = set(data) - known
        if unknown:
            raise PresetError(f"unknown preset fields {sorted(unknown)}")
        if "name" not in data or "format" not in data:
            raise PresetError("every preset needs 'name' and 'format'")
        values = dict(data)
        values["format"] = str(values["format"]).upper().replace("JPG", "JPEG")
        if values.get("crop") == "center":  # either spelling in a JSON file
            values["crop"] = "centre"
        return cls(**values)


@dataclass(frozen=True)
class Profile:
    name: str
    presets: tuple[Preset, ...]

    def __post_init__(self) -> None:
        if not self.presets:
            raise PresetError(f"profile {self.name!r} has no presets")
        names = [p.name for p in self.presets]
        if len(set(names)) != len(names):
            raise PresetError(f"profile {self.name!r}: preset names must be unique")
        files = [p.output_filename("x") for p in self.presets]
        if len(set(files)) != len(files):
            raise PresetError(f"profile {self.name!r}: two presets write the same file name")

    @property
    def version(self) -> str:
        """Changes whenever any preset changes: lets reprocessing skip up-to-date images."""
        blob = json.dumps([p.as_dict() for p in self.presets], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Encoder settings, chosen by `make bench` numbers (README, Performance):
# - WebP method 2, not libwebp's default 4: 3-4x faster at 2048 px (46-58 ms vs 163-294 ms)
#   for 0-4.5% more bytes at equal PSNR; methods >= 3 switch on the slow RD search.
# - JPEG Huffman optimisation always (6-12% smaller for ~5 ms); progressive only from 1024 px
#   up, where a progressive scan helps a slow page, since it makes small files larger.
_JPEG_SMALL = {"optimize": True}
_JPEG_LARGE = {"optimize": True, "progressive": True}
_WEBP = {"method": 2}
# - AVIF speed 8, quality per width: the lowest quality whose SSIM matches the WebP rendition's
#   (bench/formats.py, 3 corpus photos, medians, rounded up a little): 35-39% fewer bytes than
#   WebP; the web set takes 1.5-1.7x as long with it (speed 6: 44-49% fewer bytes but 2.4-3.5x,
#   over the "at most double" bar; speed 10: 20-32% fewer for 1.1-1.45x). docs/processing.md.
_AVIF = {"speed": 8}
_AVIF_QUALITY = {320: 55, 1024: 52, 2048: 50}


def _ladder(widths: Iterable[int]) -> tuple[Preset, ...]:
    presets: list[Preset] = []
    for width in widths:
        jpeg = _JPEG_LARGE if width >= 1024 else _JPEG_SMALL
        presets.append(Preset(f"w{width}_jpeg", "JPEG", width=width, quality=82, filename=f"w{width}.jpg", options=jpeg))
        presets.append(Preset(f"w{width}_webp", "WEBP", width=width, quality=80, filename=f"w{width}.webp", options=_WEBP))
        quality = _AVIF_QUALITY.get(width, min(_AVIF_QUALITY.values()))
        presets.append(Preset(f"w{width}_avif", "AVIF", width=width, quality=quality, filename=f"w{width}.avif", options=_AVIF))
    return tuple(presets)


# Animated WebP renditions of animated sources, at the ladder widths up to ANIMATION_CAP; both
# `always`, so a source narrower than a width gets one at its own size (the cap when wider).
# Numbers (docs/processing.md, Animation): a 100-frame 1024 px GIF took ~3.1 s to 1024 px and
# ~2.6 s to 320 px here; 2048 px would be ~4x the pixels per frame for GIFs that rarely exist.
ANIMATION_CAP = 1024


def _animated(widths: Iterable[int]) -> tuple[Preset, ...]:
    return tuple(
        Preset(f"w{w}_animated", "WEBP", width=w, quality=80, filename=f"w{w}.animated.webp", always=True, options=_WEBP, animated=True)
        for w in widths
        if w <= ANIMATION_CAP
    )


WEB = Profile(
    "web",
    (
        Preset(
            "thumbnail",
            "JPEG",
            width=150,
            height=150,
            fit="cover",
            quality=82,
            filename="thumbnail.jpg",
            always=True,
            options=_JPEG_SMALL,
            crop="smart",
        ),
        *_ladder((320, 1024, 2048)),
        *_animated((320, 1024, 2048)),
    ),
)

CLASSIC = Profile(
    "classic",
    (
        Preset("compressed", "JPEG", quality=85, filename="{stem}_compressed.jpg", always=True, options={"optimize": True}),
        Preset("low_quality", "JPEG", quality=50, filename="{stem}_low_quality.jpg", always=True, options={"optimize": True}),
        Preset("converted_webp", "WEBP", quality=80, filename="{stem}_converted.webp", always=True, options=_WEBP),
        # compress_level 1: 1.1-1.5 s for a 14-22 MP photo vs 3.6-3.7 s at Pillow's default 6
        # (the older scripts' 74%), for 14-30% more bytes: a full-size PNG of a photo is an
        # archival copy, not something served to browsers. compress_type 3 (zlib Z_RLE) on top:
        # on the 14 MP photo 668 ms and 9.5 MB instead of 728 ms and 11.6 MB (level 6: 8.9 MB).
        Preset("converted_png", "PNG", filename="{stem}_converted.png", always=True, options={"compress_level": 1, "compress_type": 3}),
        Preset("thumbnail", "JPEG", width=150, height=150, fit="within", quality=85, filename="{stem}_thumbnail.jpg", always=True),
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (WEB, CLASSIC)}


def load_profile(spec: str) -> Profile:
    """`spec` is a profile name (`web`, `classic`) or a path to a JSON file of presets.

    The JSON is either a list of preset objects or `{"name": ..., "presets": [...]}`.
    """
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if not (spec.endswith(".json") or path.is_file()):
        raise PresetError(f"PRESETS={spec!r}: not a profile name ({', '.join(PROFILES)}) nor a JSON file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"PRESETS={spec!r}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PresetError(f"PRESETS={spec!r}: invalid JSON ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8 text
        raise PresetError(f"PRESETS={spec!r}: cannot read it ({exc})") from None
    name, items = (raw.get("name", path.stem), raw.get("presets")) if isinstance(raw, dict) else (path.stem, raw)
    if not isinstance(items, list):
        raise PresetError(f"PRESETS={spec!r}: expected a list of presets")
    try:
        return Profile(str(name), tuple(Preset.from_dict(item) for item in items))
    except PresetError as exc:
        raise PresetError(f"PRESETS={spec!r}: {exc}") from None
