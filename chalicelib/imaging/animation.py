"""Animated GIF, WebP and APNG kept moving: one pass over the frames feeds one animated WebP
encoder per output size.

Frames are streamed: each composited canvas is resized for every output, handed to its
encoder and dropped, so memory holds one canvas (two for APNG's "previous" disposal) and the
encoders' output, never every decoded frame. The frame count and the total-pixels budget
are checked before the first frame is decoded.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from PIL import Image, _webp

from chalicelib.imaging import apng, codec, gif, steps
from chalicelib.models import ErrorCode, RejectedInput, Rendition
from chalicelib.presets import Preset

ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
_TRANSPARENT = 0x00000000  # canvas background: transparent black (ARGB)
_KEYFRAMES = (3, 5)  # kmin, kmax: gif2webp's defaults for lossy output


@dataclass(frozen=True)
class Frame:
    image: Image.Image  # the whole canvas as a viewer shows it, RGBA
    duration: int  # milliseconds


@dataclass(frozen=True)
class Target:
    preset: Preset
    size: tuple[int, int]


def is_animated(image: Image.Image) -> bool:
    return str(image.format) in ANIMATED_FORMATS and int(getattr(image, "n_frames", 1) or 1) >= 2


def check_budget(image: Image.Image, max_pixels: int) -> None:
    """frames x width x height within the budget, from the header counts (already bounded by
    MAX_FRAMES) before any frame after the first is decoded."""
    frames = int(getattr(image, "n_frames", 1) or 1)
    total = frames * image.size[0] * image.size[1]
    if total > max_pixels:
        raise RejectedInput(
            ErrorCode.TOO_MANY_PIXELS,
            f"{frames} frames of {image.size[0]}x{image.size[1]} = {total:,} pixels, over the animation budget of "
            f"{max_pixels:,} (MAX_ANIMATION_PIXELS)",
        )


def plan(presets: Sequence[Preset], display: tuple[int, int]) -> tuple[list[Target], list[str]]:
    """Sizes of the animated presets for this source: never upscaled; an `always` preset wider
    than the source is made at the source size (so a small GIF still gets one)."""
    targets: list[Target] = []
    skipped: list[str] = []
    for preset in presets:
        if preset.width is not None and preset.width > display[0] and not preset.always:
            skipped.append(preset.name)
            continue
        size = steps.fit_within(display, (preset.width, preset.height))
        if size not in {t.size for t in targets}:
            targets.append(Target(preset, size))
        else:
            skipped.append(preset.name)
    return targets, skipped


def loop_count(image: Image.Image) -> int:
    """The number of plays a browser gives the source, as WebP's loop count (0 = forever).
    A GIF's NETSCAPE count is repeats after the first play, and no NETSCAPE block plays once."""
    if image.format == "GIF":
        loop = image.info.get("loop")
        return 1 if loop is None else (0 if int(loop) == 0 else int(loop) + 1)
    return int(image.info.get("loop", 0) or 0)


def frames(image: Image.Image, data: bytes) -> Iterator[Frame]:
    """The composited frames, one at a time. GIF and APNG are composited here, as browsers do
    (see gif.py and apng.py for what Pillow's own compositing got wrong); WebP by libwebp's
    WebPAnimDecoder, through Pillow."""
    if image.format in ("PNG", "GIF"):
        composited = apng.frames(data) if image.format == "PNG" else gif.frames(data)
        yield from (Frame(canvas, duration) for canvas, duration in composited)
        return
    for index in range(int(getattr(image, "n_frames", 1))):
        image.seek(index)
        image.load()
        yield Frame(image.convert("RGBA"), round(float(image.info.get("duration", 0) or 0)))


def _feed(
    source: Iterator[Frame], targets: Sequence[Target], encoders: Sequence[_webp.WebPAnimEncoder], icc: object
) -> tuple[int, int, bool]:
    """Each frame resized for every target and added to its encoder; returns the end time, the
    count and whether any frame shows transparency."""
    timestamp, count, transparent = 0, 0, False
    for frame in source:
        opaque = cast(tuple[int, int], frame.image.getchannel("A").getextrema())[0] == 255
        transparent = transparent or not opaque
        canvas = frame.image.convert("RGB") if opaque else frame.image  # 3 channels, no premultiplying: ~40% less
        for target, encoder in zip(targets, encoders, strict=True):
            small = _resize(canvas, target.size)
            if icc:  # APNG iCCP / WebP ICCP: converted per frame, after the resize (fewer pixels)
                small.info["icc_profile"] = icc
                small = steps.to_srgb(small)
            encoder.add(small.getim(), timestamp, False, target.preset.quality, 100, int(target.preset.options.get("method", 2)))
        timestamp += frame.duration
        count += 1
    return timestamp, count, transparent


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bicubic, not the stills' Lanczos: 3.5 vs 9-14 ms for a 480 -> 320 px frame here, paid
    once per frame and size (100 frames: ~1 s saved), on content that is mostly palette art."""
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def _with_alpha_flag(data: bytes) -> bytes:
    """Set VP8X's alpha flag. libwebp's animation encoder leaves it off when transparency
    comes only from disposing an earlier frame, and decoders then show that area opaque black."""
    if data[12:16] != b"VP8X" or data[20] & 0x10:
        return data
    return data[:20] + bytes([data[20] | 0x10]) + data[21:]


def render(
    data: bytes, fmt: str, targets: Sequence[Target], stem: str, on_rendition: Callable[[Rendition], None] | None = None
) -> list[Rendition]:
    """Encode every target from one pass over the frames of `data` (a fresh decoder: the
    still renditions' image is left untouched)."""
    image = Image.open(io.BytesIO(data), formats=[fmt])
    icc = image.info.get("icc_profile")
    loop = loop_count(image)
    encoders = [_webp.WebPAnimEncoder(t.size, _TRANSPARENT, loop, False, *_KEYFRAMES, False, False) for t in targets]
    try:
        timestamp, count, transparent = _feed(frames(image, data), targets, encoders, icc)
    except (*codec.DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{fmt} animation has a corrupt frame: {exc}") from None
    if count < 2:
        raise RejectedInput(ErrorCode.CORRUPT_IMAGE, f"{fmt} declares {getattr(image, 'n_frames', 1)} frames but {count} could be read")
    renditions = []
    for target, encoder in zip(targets, encoders, strict=True):
        encoder.add(None, timestamp, False, target.preset.quality, 100, 0)
        out = bytes(encoder.assemble(b"", b"", b""))  # no ICC, EXIF or XMP: colour is sRGB already
        out = _with_alpha_flag(out) if transparent else out
        rendition = Rendition(
            preset=target.preset.name,
            filename=target.preset.output_filename(stem),
            format="WEBP",
            content_type=target.preset.content_type,
            width=target.size[0],
            height=target.size[1],
            data=out,
            frames=count,
        )
        if on_rendition is not None:
            on_rendition(rendition)
        renditions.append(rendition)
    return renditions
