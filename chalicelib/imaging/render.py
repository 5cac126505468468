"""Presets -> renditions: decode once (at reduced JPEG scale), resize, orient, convert colour, encode."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from chalicelib.imaging import animation, codec, steps
from chalicelib.models import Rendition, SourceInfo
from chalicelib.presets import Preset, Profile

# Largest side each output format can hold. Over it the rendition is scaled down to fit.
MAX_SIDE = {"WEBP": 16383, "JPEG": 65500, "PNG": 1 << 31, "AVIF": 16384}


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
    # The whole picture, upright and sRGB, at the smallest size made (>= PREVIEW_MIN px a side
    # when possible): what the image facts are computed from, at no extra decode or resize.
    preview: Image.Image | None = field(default=None, compare=False, repr=False)


def plan(profile: Profile, source: tuple[int, int]) -> tuple[list[Plan], list[str], list[str]]:
    """Resolve each preset to an output size, never upscaling. Returns plans, skipped, notes."""
    plans: list[Plan] = []
    skipped: list[str] = []
    notes: list[str] = []
    for preset in profile.presets:
        if preset.animated:  # planned by animation.plan, for animated sources only
            continue
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


# Lambda gives one vCPU's worth of time per 1,769 MB of memory, whatever cpu_count() says.
LAMBDA_MB_PER_VCPU = 1769


def worker_count(configured: int = 0, memory_mb: int = 0) -> int:
    """Threads for resizing and encoding: MAX_WORKERS if set, else the CPUs this process
    may use, capped by what Lambda's memory size pays for (a fraction counts as one more:
    2,048 MB gets 2 threads, 512 MB gets 1), at most 4."""
    if configured > 0:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    if memory_mb > 0:
        cpus = min(cpus, -(-memory_mb // LAMBDA_MB_PER_VCPU))
    return max(1, min(cpus, 4))


def render(
    data: bytes,
    profile: Profile,
    limits: codec.DecodeLimits,
    stem: str,
    *,
    workers: int = 1,
    on_rendition: Callable[[Rendition], None] | None = None,
) -> RenderResult:
    """Decode `data` once and produce every preset of `profile` that the source allows.

    `on_rendition` is called with each rendition as soon as it is encoded (from the encoding
    thread), so the caller can start writing it while the rest are still being made.
    Raises `RejectedInput` for anything that is not an acceptable image.
    """
    image = codec.open_image(data, limits)
    source_format = "JPEG" if image.format == "MPO" else str(image.format)
    frames = 1 if source_format == "HEIF" else int(getattr(image, "n_frames", 1) or 1)  # HEIF: the primary image only
    camera = steps.camera_summary(image)
    orientation = steps.exif_orientation(image)
    transposed = orientation in (5, 6, 7, 8)
    display = steps.displayed_size(image)
    plans, skipped, notes = plan(profile, display)
    moving = _animated_targets(image, profile, display, limits, skipped)
    source = SourceInfo(format=source_format, width=display[0], height=display[1], mode=image.mode, frames=frames, camera=camera)

    if not plans:  # every preset is wider than the source: nothing to make, but corrupt data is still refused
        tiny = codec.load(image, (1, 1))  # the whole stream is still read; a JPEG at 1/8 scale
        moved = animation.render(data, source_format, moving, stem, on_rendition) if moving else []
        return RenderResult(source, tuple(moved), tuple(skipped), tuple(notes), preview=_Renderer(tiny, orientation, None).finish(tiny))
    base = codec.load(image, _draft_request(plans, transposed))
    if base.mode not in _RESAMPLE_MODES:
        base = steps.to_srgb(base)  # palette, alpha, 16-bit: normalise before any resampling
        base.info.clear()  # colour is done: the profile must not be applied twice
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render") if workers > 1 else None
    renderer = _Renderer(base, orientation, pool)
    try:
        renditions = renderer.run(plans, stem, on_rendition)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if moving:  # after the stills: their poster is frame 0 of the image decoded above
        renditions += tuple(animation.render(data, source_format, moving, stem, on_rendition))
    return RenderResult(source, renditions, tuple(skipped), tuple(notes), preview=renderer.preview())


def _animated_targets(
    image: Image.Image, profile: Profile, display: tuple[int, int], limits: codec.DecodeLimits, skipped: list[str]
) -> list[animation.Target]:
    """The animated renditions this source gets: none for a still, or with ANIMATION=still.
    The total-pixels budget is checked here, before any frame is decoded."""
    presets = [p for p in profile.presets if p.animated]
    if not presets or not limits.keep_animation or not animation.is_animated(image):
        return []
    animation.check_budget(image, limits.max_animation_pixels)
    targets, too_small = animation.plan(presets, display)
    skipped.extend(too_small)
    return targets


PREVIEW_MIN = 64
# Modes that resample correctly as decoded; colour and orientation are applied afterwards.
_RESAMPLE_MODES = frozenset({"RGB", "L", "CMYK"})
# The first, largest reduction is shared by the threads in strips, from 1 MP of output up.
_STRIPS_PER_WORKER = 2
_STRIP_MIN_PIXELS = 1_000_000


class _Renderer:
    """Resize largest first, encode each image as soon as it exists.

    Work on pixels that are not yet upright or sRGB is done in the stored orientation and
    colour space; orientation and the ICC transform are applied to each image made
    directly from the decoded base, so they touch the small image, not the big one.
    The pool (if any) runs strips of the first resize, then the encoders, while this
    thread keeps resizing the smaller renditions.
    """

    def __init__(self, base: Image.Image, orientation: int, pool: ThreadPoolExecutor | None) -> None:
        self.base = base
        self.orientation = orientation
        self.pool = pool
        self.made: dict[tuple[int, int], Image.Image] = {}  # whole-picture images, upright and sRGB

    def preview(self) -> Image.Image | None:
        """The smallest whole-picture image made that is PREVIEW_MIN px a side (else the largest)."""
        if not self.made:
            return None
        big_enough = [im for im in self.made.values() if min(im.size) >= PREVIEW_MIN]
        if big_enough:
            return min(big_enough, key=lambda im: im.size[0] * im.size[1])
        return max(self.made.values(), key=lambda im: im.size[0] * im.size[1])

    def run(self, plans: Sequence[Plan], stem: str, on_rendition: Callable[[Rendition], None] | None) -> tuple[Rendition, ...]:
        order = sorted(range(len(plans)), key=lambda i: plans[i].scaled[0] * plans[i].scaled[1], reverse=True)
        made = self.made
        jobs: dict[int, Callable[[], Rendition]] = {}
        futures: dict[int, Future[Rendition]] = {}
        stored = self._stored_size
        for index in order:
            item = plans[index]
            start = made.get(item.scaled)
            if start is None:
                # At least twice the size (less one pixel of rounding): cheaper than the base, still sharp.
                candidates = [im for size, im in made.items() if min(a - 2 * b for a, b in zip(size, item.scaled, strict=True)) >= -1]
                if candidates:
                    start = steps.resize(min(candidates, key=lambda im: im.size[0] * im.size[1]), item.scaled)
                else:
                    start = self.finish(self._resize(self.base, stored(item.scaled)))
                made[item.scaled] = start
            output = steps.cover(start, item.size, item.preset.crop) if item.preset.fit == "cover" else start
            jobs[index] = _encoder(item, output, stem, on_rendition)
            if self.pool is not None:
                futures[index] = self.pool.submit(jobs[index])
        if self.pool is None:
            return tuple(jobs[i]() for i in range(len(plans)))
        return tuple(futures[i].result() for i in range(len(plans)))

    def _stored_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[1], size[0]) if self.orientation in (5, 6, 7, 8) else size

    def finish(self, image: Image.Image) -> Image.Image:
        """Upright and sRGB, with no metadata left on the pixels."""
        out = steps.to_srgb(steps.apply_orientation(image, self.orientation))
        out.info.clear()
        return out

    def _resize(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """steps.resize, with both Lanczos passes shared by the pool for big outputs.

        Pillow resizes in two separable passes (horizontal, then vertical) and releases the
        GIL. Each output row of the horizontal pass depends on one source row only, and each
        column of the vertical pass on one column, so bands of rows, then of columns, give
        exactly the pixels of a single resize (tested).
        """
        if self.pool is None or image.size == size or size[0] * size[1] < _STRIP_MIN_PIXELS:
            return steps.resize(image, size)
        image, box = steps.pre_reduce(image, size)
        (width, height), parts = image.size, self.pool._max_workers * _STRIPS_PER_WORKER
        if size[0] != width or (box[0], box[2]) != (0, width):
            image = self._bands(image, (size[0], height), parts, (box[0], box[2]), rows=True)
        if size[1] != height or (box[1], box[3]) != (0, height):
            image = self._bands(image, size, parts, (box[1], box[3]), rows=False)
        return image

    def _bands(self, image: Image.Image, size: tuple[int, int], parts: int, span: tuple[float, float], *, rows: bool) -> Image.Image:
        assert self.pool is not None
        length = image.size[1] if rows else image.size[0]
        edges = [length * i // parts for i in range(parts + 1)]

        def band(i: int) -> Image.Image:
            if rows:  # horizontal pass on rows edges[i]:edges[i+1]
                part = image.crop((0, edges[i], image.size[0], edges[i + 1]))
                return part.resize((size[0], part.size[1]), steps.LANCZOS, box=(span[0], 0, span[1], part.size[1]))
            part = image.crop((edges[i], 0, edges[i + 1], image.size[1]))
            return part.resize((part.size[0], size[1]), steps.LANCZOS, box=(0, span[0], part.size[0], span[1]))

        out = Image.new(image.mode, size)
        for i, piece in enumerate(self.pool.map(band, range(parts))):
            out.paste(piece, (0, edges[i]) if rows else (edges[i], 0))
        out.info = dict(image.info)
        return out


def _encoder(item: Plan, image: Image.Image, stem: str, on_rendition: Callable[[Rendition], None] | None) -> Callable[[], Rendition]:
    preset = item.preset

    def encode() -> Rendition:
        # save() stores its options on the Image object, so threads sharing one image would
        # race on them: give each encoder its own wrapper around the same pixels (no copy).
        pixels = image._new(image.im)
        if preset.format == "JPEG":
            pixels = steps.flatten(pixels)
        data = codec.encode(pixels, preset.format, preset.quality, dict(preset.options))
        rendition = Rendition(
            preset=preset.name,
            filename=preset.output_filename(stem),
            format=preset.format,
            content_type=preset.content_type,
            width=pixels.size[0],
            height=pixels.size[1],
            data=data,
        )
        if on_rendition is not None:
            on_rendition(rendition)
        return rendition

    return encode
