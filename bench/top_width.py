"""The lever issue 16 decided on, measured only (the presets stay as they are): the `web` set's
CPU time with its top rendition at 2048 px wide (today), at 1920 px wide, and fitted in a
1920 x 1920 box (the long edge: portrait photos get the 1/2-scale JPEG decode too).

    python -m bench.top_width [--corpus DIR] [--repeats 5] [--threads 1,2]

Each repeat renders every variant once in a rotating order (the pairs share the machine's
load); CPU time is process-wide (all threads). PSNR of the top rendition against a
full-decode Lanczos reference, as `make bench` scores the web set. With libvips installed, it
makes the 2048 and the 1920-box sets too, so the lever is judged against goal 1 (ours/libvips).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import approaches
from bench.quality import quality, reference_image
from chalicelib.imaging import codec, render
from chalicelib.presets import WEB, Preset, Profile

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))
PHOTOS = ("photo_12mp_xiaomi_mi9t_orient6.jpg", "photo_8mp_iphone6.jpg")
LIMITS = codec.DecodeLimits(max_pixels=50_000_000, max_frames=1000)
TOP = 2048


def _top_at(width: int, *, long_edge: bool) -> Profile:
    """WEB with its 2048 presets moved to `width` (wide, or a width x width box)."""

    def moved(preset: Preset) -> Preset:
        if preset.width != TOP or preset.animated:
            return preset
        name, filename = preset.name.replace(str(TOP), str(width)), preset.filename.replace(str(TOP), str(width))
        return replace(preset, name=name, filename=filename, width=width, height=width if long_edge else None)

    return Profile(f"web_top{width}{'_box' if long_edge else ''}", tuple(moved(p) for p in WEB.presets))


VARIANTS = {"w2048": WEB, "w1920": _top_at(1920, long_edge=False), "box1920": _top_at(1920, long_edge=True)}


def _cpu_ms(data: bytes, name: str, threads: int) -> float:
    """CPU ms of one web set: ours, or libvips (`vips_` + the variant) making the same one."""
    start = time.process_time()
    if name.startswith("vips_"):
        approaches.vips_web(data, threads, VARIANTS[name.removeprefix("vips_")])
    else:
        render.render(data, VARIANTS[name], LIMITS, "bench", workers=threads)
    return (time.process_time() - start) * 1000


def _ratio(cpu: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(cpu[a], cpu[b], strict=True))


def measure(path: Path, repeats: int, threads: list[int], *, vips: bool) -> dict[str, Any]:
    data = path.read_bytes()
    names = [*VARIANTS, *(["vips_w2048", "vips_box1920"] if vips else [])]
    jobs = [(name, t) for t in threads for name in names]
    for name, t in jobs:  # warm-up
        _cpu_ms(data, name, t)
    cpu: dict[str, list[float]] = {f"{n}_{t}t": [] for n, t in jobs}
    for rep in range(repeats):
        for name, t in jobs[rep % len(jobs) :] + jobs[: rep % len(jobs)]:
            cpu[f"{name}_{t}t"].append(_cpu_ms(data, name, t))
    medians = {k: statistics.median(v) for k, v in cpu.items()}
    ratios = {f"{n}_over_w2048_{t}t": _ratio(cpu, f"{n}_{t}t", f"w2048_{t}t") for n in VARIANTS if n != "w2048" for t in threads}
    if vips:  # does the lever move goal 1? ours/libvips on the same set, before and after
        for t in threads:
            ratios[f"ours_over_vips_w2048_{t}t"] = _ratio(cpu, f"w2048_{t}t", f"vips_w2048_{t}t")
            ratios[f"ours_over_vips_box1920_{t}t"] = _ratio(cpu, f"box1920_{t}t", f"vips_box1920_{t}t")
    reference = reference_image(data)
    top: dict[str, Any] = {}
    for name, profile in VARIANTS.items():
        result = render.render(data, profile, LIMITS, "bench", workers=threads[-1])
        biggest = max((r for r in result.renditions if r.format == "JPEG"), key=lambda r: r.width)
        scored = quality(reference, {biggest.preset: biggest.data})[biggest.preset]
        top[name] = {"preset": biggest.preset, "size": [biggest.width, biggest.height], "psnr": scored["psnr"]}
    return {"name": path.name, "median_cpu_ms": medians, "cpu_ratio_medians": ratios, "top_jpeg": top}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-vips", action="store_true", help="ours only (libvips: bench/requirements.txt)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "top_width.json")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    vips = not args.no_vips and approaches.vips_available() is not None
    rows = [measure(args.corpus / name, args.repeats, threads, vips=vips) for name in PHOTOS if (args.corpus / name).is_file()]
    load_after = os.getloadavg()
    print(f"web set CPU ms (median of {args.repeats}), top rendition 2048 wide vs 1920 wide vs a 1920 box")
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for row in rows:
        for t in threads:
            c, r = row["median_cpu_ms"], row["cpu_ratio_medians"]
            print(
                f"{row['name'][:34]:<35}{t}t  w2048 {c[f'w2048_{t}t']:>6.0f}  w1920 {c[f'w1920_{t}t']:>6.0f} "
                f"({r[f'w1920_over_w2048_{t}t']:.2f}x)  box1920 {c[f'box1920_{t}t']:>6.0f} ({r[f'box1920_over_w2048_{t}t']:.2f}x)"
            )
            if f"ours_over_vips_box1920_{t}t" in r:
                print(
                    f"{'':<35}{t}t  ours/libvips CPU: w2048 {r[f'ours_over_vips_w2048_{t}t']:.2f} "
                    f"(libvips {c[f'vips_w2048_{t}t']:.0f}), box1920 {r[f'ours_over_vips_box1920_{t}t']:.2f} "
                    f"(libvips {c[f'vips_box1920_{t}t']:.0f})"
                )
        sizes = ", ".join(f"{k} {v['size'][0]}x{v['size'][1]} {v['psnr']:.1f} dB" for k, v in row["top_jpeg"].items())
        print(f"{'':<35}top JPEG vs Lanczos reference: {sizes}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average": [load_before, load_after], "photos": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
