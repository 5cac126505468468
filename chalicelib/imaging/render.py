"""Presets -> renditions: decode once, orient, convert colour, resize, encode."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from chalicelib.imaging import codec, steps
from chalicelib.models import Rendition, SourceInfo
from chalicelib.presets import Preset, Profile

# Largest side each output format can hold. Over it the rendition is scaled down to fit.
MAX_SIDE = {"WEBP": 16383, "JPEG": 65500, "PNG": 1 << 31}


@dataclass(frozen=True)
class Plan:
    """A preset resolved against one source: the exact output size and how to reach it."""

    preset: Preset
    size: tuple[int, int]  # final output size
    scaled: tuple[int, int]  # size before a cover crop (== size for `within`)
    capped: bool = False  # shrunk to the format's maximum side


@dataclass(frozen=True)
class RenderResult:
    source: SourceInfo
    renditions: tuple[Rendition, ...]
    skipped: tuple[str, ...]  # presets not produced (source too small), by name
    notes: tuple[str, ...] = ()


def plan(profile: Profile, source: tuple[int, int]) -> tuple[list[Plan], list[str], list[str]]:
    """Resolve each preset to an output size, never upscaling. Returns plans, skipped, notes."""
    plans: list[Plan] = []
    skipped: list[str] = []
    notes: list[str] = []
    for preset in profile.presets:
        if preset.fit == "cover":
            assert preset.width and preset.height
            box = steps.cover_box(source, (preset.width, preset.height))
            scaled = steps.cover_scaled(source, box)
            plans.append(Plan(preset, box, scaled))
            continue
        if not preset.always and preset.width is not None and preset.width > source[0]:
            skipped.append(preset.name)
            continue
        if not preset.always and preset.height is not None and preset.width is None and preset.height > source[1]:
            skipped.append(preset.name)
            continue
        size = steps.fit_within(source, (preset.width, preset.height))
        limit = MAX_SIDE[preset.format]
        capped = max(size) > limit
        if capped:
            size = steps.fit_within(size, (limit, limit))
            notes.append(f"{preset.name}: scaled to {size[0]}x{size[1]} ({preset.format} allows at most {limit} px a side)")
        plans.append(Plan(preset, size, size, capped))
    return plans, skipped, notes


def _draft_request(plans: Sequence[Plan], transposed: bool) -> tuple[int, int]:
    width = max(p.scaled[0] for p in plans)
    height = max(p.scaled[1] for p in plans)
    return (height, width) if transposed else (width, height)


def worker_count(configured: int = 0) -> int:
    """Threads for encoding: what the function was given (Lambda scales vCPUs with memory)."""
    if configured > 0:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def render(
    data: bytes,
    profile: Profile,
    limits: codec.DecodeLimits,
    stem: str,
    *,
    workers: int = 1,
) -> RenderResult:
    """Decode `data` once and produce every preset of `profile` that the source allows.

    Raises `RejectedInput` for anything that is not an acceptable image.
    """
    image = codec.open_image(data, limits)
    source_format = "JPEG" if image.format == "MPO" else str(image.format)
    frames = int(getattr(image, "n_frames", 1) or 1)
    camera = steps.camera_summary(image)
    transposed = steps.exif_orientation(image) in (5, 6, 7, 8)
    display = steps.displayed_size(image)
    plans, skipped, notes = plan(profile, display)

    base = codec.load(image, _draft_request(plans, transposed))
    base = steps.to_srgb(steps.orient(base))
    base.info.clear()
    source = SourceInfo(format=source_format, width=display[0], height=display[1], mode=image.mode, frames=frames, camera=camera)

    resized = _resize_all(base, plans)
    jobs: list[Callable[[], Rendition]] = [_encoder(p, resized[i], stem) for i, p in enumerate(plans)]
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode") as pool:
            renditions = tuple(pool.map(lambda job: job(), jobs))
    else:
        renditions = tuple(job() for job in jobs)
    return RenderResult(source, renditions, tuple(skipped), tuple(notes))


def _resize_all(base: Image.Image, plans: Sequence[Plan]) -> list[Image.Image]:
    """Resize largest first; each smaller output starts from the smallest image that covers it."""
    order = sorted(range(len(plans)), key=lambda i: plans[i].scaled[0] * plans[i].scaled[1], reverse=True)
    made: dict[tuple[int, int], Image.Image] = {base.size: base}
    results: dict[int, Image.Image] = {}
    for index in order:
        item = plans[index]
        if item.scaled in made:
            start = made[item.scaled]
        else:
            candidates = [im for size, im in made.items() if size[0] >= item.scaled[0] * 2 and size[1] >= item.scaled[1] * 2]
            start = min(candidates, key=lambda im: im.size[0] * im.size[1]) if candidates else base
            made[item.scaled] = steps.resize(start, item.scaled)
            start = made[item.scaled]
        results[index] = steps.cover(start, item.size) if item.preset.fit == "cover" else start
    return [results[i] for i in range(len(plans))]


def _encoder(item: Plan, image: Image.Image, stem: str) -> Callable[[], Rendition]:
    preset = item.preset

    def encode() -> Rendition:
        # save() stores its options on the Image object, so threads sharing one image would
        # race on them: give each encoder its own wrapper around the same pixels (no copy).
        pixels = image._new(image.im)
        if preset.format == "JPEG":
            pixels = steps.flatten(pixels)
        data = codec.encode(pixels, preset.format, preset.quality, dict(preset.options))
        return Rendition(
            preset=preset.name,
            filename=preset.output_filename(stem),
            format=preset.format,
            content_type=preset.content_type,
            width=pixels.size[0],
            height=pixels.size[1],
            data=data,
        )

    return encode
