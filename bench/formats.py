"""Figures for the formats work: AVIF against WebP per ladder width, HEIC decode, animation.

    python -m bench.formats [--corpus DIR] [--photos N] [--speeds 6,8,10] [--out bench/results]

AVIF: for each corpus photo and ladder width, the WebP rendition as the web profile makes
it (quality 80, method 2) sets the bar: its SSIM against the Lanczos reference. For each
AVIF speed, the lowest quality whose SSIM reaches that bar is found (bisection), and its
bytes and encode time are reported against WebP's. HEIC: decode time of a 12 MP photo
re-encoded as HEIC (pillow-heif writes it; pi-heif decodes, as Lambda does). Animation: the
web profile's animated renditions of a 100-frame 480 px GIF. Needs numpy (bench/requirements.txt)
and pillow-heif (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from chalicelib.imaging import codec, render
from chalicelib.presets import WEB

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (320, 1024, 2048)
LIMITS = codec.DecodeLimits(max_pixels=100_000_000, max_frames=1000)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM of the luma planes, 11-tap Gaussian window (sigma 1.5), as Wang et al."""
    x = np.asarray(a.convert("L"), dtype=np.float64)
    y = np.asarray(b.convert("L"), dtype=np.float64)
    taps = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(plane: np.ndarray) -> np.ndarray:
        rows = np.apply_along_axis(lambda r: np.convolve(r, taps, mode="valid"), 1, plane)
        return np.apply_along_axis(lambda c: np.convolve(c, taps, mode="valid"), 0, rows)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


def encode(image: Image.Image, fmt: str, quality: int, **options: Any) -> tuple[bytes, float]:
    best = float("inf")
    data = b""
    for _ in range(2):  # the faster of two: a shared machine's noise only ever adds time
        start = time.perf_counter()
        data = codec.encode(image, fmt, quality, dict(options))
        best = min(best, time.perf_counter() - start)
    return data, best * 1000


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def avif_at_equal_ssim(image: Image.Image, target: float, speed: int) -> dict[str, Any]:
    """The lowest AVIF quality reaching `target` SSIM (bisection over 20..95)."""
    low, high, found = 20, 95, None
    while low <= high:
        quality = (low + high) // 2
        data, ms = encode(image, "AVIF", quality, speed=speed)
        score = ssim(image, decode(data))
        if score >= target:
            found, high = {"quality": quality, "bytes": len(data), "ms": ms, "ssim": score}, quality - 1
        else:
            low = quality + 1
    return found or {"quality": None}


def avif_table(photos: list[Path], speeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for photo in photos:
        source = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
        for width in WIDTHS:
            reference = source.resize((width, round(source.height * width / source.width)), Image.Resampling.LANCZOS)
            webp, webp_ms = encode(reference, "WEBP", 80, method=2)
            jpeg, jpeg_ms = encode(reference, "JPEG", 82, optimize=True, progressive=width >= 1024)
            bar = ssim(reference, decode(webp))
            row: dict[str, Any] = {"photo": photo.name, "width": width, "webp_bytes": len(webp), "webp_ms": webp_ms}
            row |= {"webp_ssim": bar, "jpeg_bytes": len(jpeg), "jpeg_ms": jpeg_ms}
            for speed in speeds:
                row[f"avif_s{speed}"] = avif_at_equal_ssim(reference, bar, speed)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def heic_decode(photo: Path, repeats: int = 3) -> dict[str, Any]:
    import pillow_heif  # dev dependency, only to write the test file

    source = Image.open(photo)
    buffer = io.BytesIO()
    pillow_heif.from_pillow(ImageOps.exif_transpose(source)).save(buffer, quality=85)
    data = buffer.getvalue()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        codec.load(codec.open_image(data, LIMITS))
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    render.render(data, WEB, LIMITS, "bench", workers=2)
    return {
        "photo": photo.name,
        "size": source.size,
        "bytes": len(data),
        "decode_ms": min(times),
        "web_render_ms": (time.perf_counter() - start) * 1000,
    }


def animation(frames: int = 100, width: int = 480) -> dict[str, Any]:
    from tests.support import formats, hostile  # the same generator as the tests

    height = width * 3 // 4
    gif = formats.save_animation([hostile.palette(f) for f in formats.moving_square_frames(frames, (width, height))], "GIF", [50] * frames)
    still_only = WEB.__class__("stills", tuple(p for p in WEB.presets if not p.animated))
    times: dict[str, list[float]] = {"web": [], "stills": []}
    result = None
    for _ in range(3):
        for name, profile in (("web", WEB), ("stills", still_only)):
            start = time.perf_counter()
            out = render.render(gif, profile, LIMITS, "bench", workers=2)
            times[name].append((time.perf_counter() - start) * 1000)
            result = out if name == "web" else result
    assert result is not None
    moving = [
        {"preset": r.preset, "size": [r.width, r.height], "frames": r.frames, "bytes": r.size} for r in result.renditions if r.animated
    ]
    return {
        "source": f"{frames} frames {width}x{height} GIF, {len(gif)} bytes",
        "web_ms": min(times["web"]),
        "stills_ms": min(times["stills"]),
        "animated_ms": min(times["web"]) - min(times["stills"]),
        "animated": moving,
    }


def summary(rows: list[dict[str, Any]], speeds: list[int]) -> list[str]:
    lines = [
        "| width | speed | AVIF quality (median) | bytes vs WebP (median) | AVIF ms | WebP ms | JPEG ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for width in WIDTHS:
        at = [r for r in rows if r["width"] == width]
        for speed in speeds:
            found = [r for r in at if r[f"avif_s{speed}"].get("quality") is not None]
            if not found:
                continue
            saved = statistics.median(r[f"avif_s{speed}"]["bytes"] / r["webp_bytes"] - 1 for r in found)
            lines.append(
                f"| {width} | {speed} | {statistics.median(r[f'avif_s{speed}']['quality'] for r in found):.0f} | {saved:+.0%} | "
                f"{statistics.median(r[f'avif_s{speed}']['ms'] for r in found):.0f} | {statistics.median(r['webp_ms'] for r in at):.0f} | "
                f"{statistics.median(r['jpeg_ms'] for r in at):.0f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus")))
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--speeds", default="6,8,10")
    parser.add_argument("--skip-avif", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    speeds = [int(s) for s in args.speeds.split(",")]
    photos = sorted(args.corpus.glob("photo_*.jpg"))[: args.photos]
    report: dict[str, Any] = {"animation": animation()}
    print(json.dumps(report["animation"]), flush=True)
    twelve = [p for p in sorted(args.corpus.glob("photo_12mp*.jpg"))] or photos[:1]
    if twelve:
        report["heic"] = heic_decode(twelve[0])
        print(json.dumps(report["heic"]), flush=True)
    if not args.skip_avif:
        report["avif"] = avif_table(photos, speeds)
        report["avif_summary"] = summary(report["avif"], speeds)
        print("\n".join(report["avif_summary"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "formats.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
