"""Image facts: time per image and the perceptual hash's measured separation.

    python -m bench.facts [--corpus DIR] [--side 1024]

Time: `compute_facts` on the upright copy the renderer hands it (`RenderResult.preview`,
the `web` thumbnail's scaled image, ~200 px), median of repeats, per corpus photo; and the
same from the 2048 px draft for comparison. That is the time the facts add per image: they
decode and resize nothing themselves.
Separation: each distinct corpus photo against its variants (re-encoded at JPEG q50-q90,
downscaled to 25-75%, cropped 5%) must stay within DUPLICATE_MAX_DISTANCE bits; pairs of
different photos must not. Prints the largest same-photo distance and the smallest
different-photo distance, for pHash (used) and dHash (measured, not used).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from chalicelib.duplicates import hamming
from chalicelib.facts import compute_facts, phash
from chalicelib.imaging import codec, render
from chalicelib.presets import WEB

# The same corpus the tests use (tests/conftest.py): a clone elsewhere points at it by env.
CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"))
# The orientation sets are one photo each, eight times (different EXIF tags): one of each counts.
DUPLICATED = ("orient_landscape_", "orient_portrait_")
PIPELINE_SIDE = 200  # about the size of the copy compute_facts gets in the pipeline


def distinct_photos(corpus: Path) -> list[Path]:
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".gif", ".webp"))
    return [p for p in files if not p.name.startswith(DUPLICATED) or p.stem.endswith("_1")]


def upright(path: Path, side: int) -> Image.Image:
    """The photo upright, RGB, at most `side` px (JPEG draft decode, as the pipeline does)."""
    with Image.open(path) as image:
        image.draft("RGB", (side, side))
        out = ImageOps.exif_transpose(image).convert("RGB")
    out.thumbnail((side, side), Image.Resampling.LANCZOS)
    return out


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """The same photo as users re-upload it: re-encoded, downscaled, lightly cropped."""
    out = {f"jpeg q{q}": _jpeg(image, q) for q in (50, 60, 70, 80, 90)}
    for percent in (25, 50, 75):
        size = (max(1, image.size[0] * percent // 100), max(1, image.size[1] * percent // 100))
        out[f"scaled {percent}%"] = _jpeg(image.resize(size, Image.Resampling.LANCZOS), 85)
    w, h = image.size
    dx, dy = round(w * 0.025), round(h * 0.025)  # 5% off each dimension, centred
    out["crop 5%"] = _jpeg(image.crop((dx, dy, w - dx, h - dy)), 85)
    return out


def pipeline_copy(image: Image.Image) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((PIPELINE_SIDE, PIPELINE_SIDE), Image.Resampling.LANCZOS)
    return copy


def dhash(image: Image.Image) -> str:
    """Difference hash (8 rows of 9 grey samples, left < right), for comparison only."""
    grey = list(image.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes())
    value = 0
    for y in range(8):
        for x in range(8):
            value = (value << 1) | (grey[y * 9 + x] < grey[y * 9 + x + 1])
    return f"{value:016x}"


@dataclass(frozen=True)
class Separation:
    same_max: int  # largest distance between a photo and one of its variants
    same_worst: str  # which photo and variant
    different_min: int  # smallest distance between two different photos
    different_worst: str


def separation(photos: Iterable[tuple[str, Image.Image]], hasher: Callable[[Image.Image], str] = phash) -> Separation:
    """Distances of each photo to its variants and between different photos (on pipeline-sized copies)."""
    same: list[tuple[int, str]] = []
    originals: list[tuple[str, str]] = []
    for name, image in photos:
        base = hasher(pipeline_copy(image))
        originals.append((name, base))
        same += [(hamming(base, hasher(pipeline_copy(v))), f"{name} {label}") for label, v in variants(image).items()]
    different = [(hamming(a, b), f"{na} vs {nb}") for (na, a), (nb, b) in itertools.combinations(originals, 2)]
    (same_max, same_worst), (diff_min, diff_worst) = max(same), min(different, default=(64, "-"))
    return Separation(same_max, same_worst, diff_min, diff_worst)


def time_facts(image: Image.Image, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute_facts(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--side", type=int, default=1024, help="size the variants are made from (px)")
    args = parser.parse_args(argv)
    paths = distinct_photos(args.corpus)
    compute_facts(Image.new("RGB", (64, 64)))  # warm up imports and tables
    print("compute_facts per image (median of 7): from the render's preview | from the 2048 px draft")
    for path in paths:
        preview = render.render(path.read_bytes(), WEB, codec.DecodeLimits(max_pixels=60_000_000, max_frames=1000), "bench").preview
        assert preview is not None
        draft = upright(path, 2048)
        size = f"{preview.size[0]}x{preview.size[1]}"
        print(f"  {path.name:40s} {time_facts(preview) * 1000:6.1f} ms ({size}) | {time_facts(draft, 3) * 1000:6.1f} ms")
    photos = [(p.name, upright(p, args.side)) for p in paths]
    for label, hasher in (("pHash", phash), ("dHash", dhash)):
        result = separation(photos, hasher)
        print(
            f"{label}: same photo, largest distance {result.same_max} ({result.same_worst}); "
            f"different photos, smallest {result.different_min} ({result.different_worst})"
        )


if __name__ == "__main__":
    main()
