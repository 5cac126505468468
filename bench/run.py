"""`make bench`: our renditions vs the older scripts' code vs libvips, on real photos.

    python -m bench.run [--corpus DIR] [--repeats N] [--threads 1,2] [--out bench/results] [--quick]

`--quick` (a few minutes on a busy machine): the smallest and the largest photo only, 3 repeats
(the older scripts' code once), fewer cold starts; the 50 MP memory check still runs.

Every repeat runs every approach once on the same photo, in a rotating order, so a noisy
(shared) machine slows both sides of a ratio alike; ratios are taken pair by pair within a
repeat and the median is reported. Peak RSS is measured once per approach in a fresh
process (`--child`). Quality: PSNR of each web rendition against a full-decode Lanczos
reference, for ours and for libvips. Cold start: `python -X importtime -c "import app"` in
fresh processes, with the dev stage's environment.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageOps

from bench import approaches, docs
from bench.quality import quality, reference_image
from bench.report import LAMBDA_512_WORKERS, goals, median, plot, print_table, summarise

ROOT = Path(__file__).resolve().parents[1]
# The same corpus the tests use (tests/conftest.py): a clone elsewhere points at it by env.
DEFAULT_CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))


# --- timing -----------------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall ms and CPU ms (all threads of this process: ours, libvips' and moto's)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


def _jobs(
    data: bytes, name: str, threads: list[int], *, vips: bool, classic: bool, handler: approaches.Handler | None
) -> dict[str, Callable[[], object]]:
    jobs: dict[str, Callable[[], object]] = {"floor": lambda: approaches.decode_floor(data)}
    if classic:
        jobs["naive_classic"] = lambda: approaches.naive_classic(data)
    for t in threads:
        jobs[f"ours_web_{t}t"] = lambda t=t: approaches.ours(data, "web", t)  # type: ignore[misc]
        if classic:
            jobs[f"ours_classic_{t}t"] = lambda t=t: approaches.ours(data, "classic", t)  # type: ignore[misc]
        if vips:
            jobs[f"vips_web_{t}t"] = lambda t=t: approaches.vips_web(data, t)  # type: ignore[misc]
        if handler is not None:
            jobs[f"handler_web_{t}t"] = lambda t=t: handler.run(data, name, t)  # type: ignore[misc]
    return jobs


def time_photo(
    data: bytes,
    name: str,
    threads: list[int],
    *,
    repeats: int,
    naive_repeats: int,
    vips: bool,
    classic: bool,
    handler: approaches.Handler | None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    jobs = _jobs(data, name, threads, vips=vips, classic=classic, handler=handler)
    for job in jobs.values():  # warm-up: caches (ICC transforms, imports), not measured
        with contextlib.redirect_stdout(io.StringIO()):
            job()
    times: dict[str, list[float]] = {key: [] for key in jobs}
    cpu: dict[str, list[float]] = {key: [] for key in jobs}
    names = list(jobs)
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for key in order:
            if key == "naive_classic" and rep >= naive_repeats:
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                wall, used = _timed(jobs[key])
            times[key].append(wall)
            cpu[key].append(used)
    return times, cpu


def _pair_ratio(a: list[float], b: list[float]) -> float | None:
    """Median of per-repeat ratios a[i]/b[i] (both measured in the same repeat)."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y > 0]
    return statistics.median(pairs) if pairs else None


# --- peak memory in a fresh process --------------------------------------------------------------


def child(kind: str, photo: Path, threads: int) -> None:
    """Run one approach once in this (fresh) process and print its peak RSS."""
    data = photo.read_bytes()
    start = time.perf_counter()
    if kind == "ours_web":
        approaches.ours(data, "web", threads)
    elif kind == "ours_classic":
        approaches.ours(data, "classic", threads)
    elif kind == "vips_web":
        approaches.vips_web(data, threads)
    elif kind == "naive_classic":
        approaches.naive_classic(data)
    elif kind == "handler_web":
        with contextlib.redirect_stdout(io.StringIO()):
            approaches.Handler().run(data, photo.name, threads)
    else:
        raise SystemExit(f"unknown child {kind}")
    elapsed = (time.perf_counter() - start) * 1000
    print(json.dumps({"maxrss_mb": _peak_rss_mb(), "ms": elapsed}))


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from
    the forked parent, so a child of a big parent would report the parent's size."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(kind: str, photo: Path, threads: int) -> dict[str, float] | None:
    cmd = [sys.executable, "-m", "bench.run", "--child", kind, "--photo", str(photo), "--threads", str(threads)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603 - our own script
    if result.returncode != 0:
        print(f"  ! {kind} on {photo.name} failed in a fresh process: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def make_50mp(source: Path, directory: Path) -> Path:
    """A 50 MP JPEG (just under MAX_SOURCE_PIXELS) by upscaling a corpus photo."""
    image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
    scale = math.sqrt(49_900_000 / (image.width * image.height))
    big = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BICUBIC)
    path = directory / f"synthetic_50mp_from_{source.stem}.jpg"
    big.save(path, "JPEG", quality=90)
    return path


# --- cold start ------------------------------------------------------------------------------------


def cold_start(runs: int) -> dict[str, Any] | None:
    """`python -X importtime -c "import app"` in `runs` fresh processes: what a Lambda cold
    start pays before the handler runs. Also lists the Pillow plugins `import app` loaded
    (codec imports the few it allows explicitly; Pillow's init() would load ~40)."""
    if runs <= 0:
        return None
    env = dict(os.environ)
    env.update(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"])
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["ALLOW_ANONYMOUS_WRITES"] = "true"  # the dev stage's WRITE_AUTH=none; app refuses it unless said
    probe = "import sys, time; c = time.process_time(); import app; print((time.process_time() - c) * 1000); "
    probe += "print(','.join(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('Plugin'))))"
    import_ms: list[float] = []
    cpu_ms: list[float] = []
    plugins: list[str] = []
    for _ in range(runs):
        cmd = [sys.executable, "-X", "importtime", "-c", probe]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 - our own app
        if result.returncode != 0:
            print(f"  ! import app failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return None
        # The last line for the top-level module: "import time: self | cumulative | app" (µs).
        lines = [ln for ln in result.stderr.splitlines() if ln.rstrip().endswith("| app")]
        import_ms.append(int(lines[-1].split("|")[1]) / 1000)
        out = result.stdout.strip().splitlines()
        cpu_ms.append(float(out[0]))
        plugins = [p.removeprefix("PIL.") for p in out[1].split(",") if p] if len(out) > 1 else []
    return {
        "runs": runs,
        "import_ms": import_ms,
        "median_ms": statistics.median(import_ms),
        "min_ms": min(import_ms),
        "median_cpu_ms": statistics.median(cpu_ms),
        "pil_plugins": plugins,
    }


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.width * im.height


# --- main ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="photos (default: $IMAGE_PIPELINE_CORPUS, ../shared/corpus)")
    parser.add_argument("--pattern", default="photo_*.jpg", help="glob inside --corpus")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3, help="the naive code takes seconds per photo")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-vips", action="store_true")
    parser.add_argument("--no-handler", action="store_true")
    parser.add_argument("--no-classic", action="store_true", help="skip the classic profile and the older scripts' code")
    parser.add_argument("--no-rss", action="store_true", help="skip fresh-process peak memory runs (and the 50 MP one)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md", help="where the latest tables go (not with --quick)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md as it is")
    parser.add_argument("--cold-starts", type=int, default=9, help="fresh `import app` processes to time (0 skips)")
    parser.add_argument("--quick", action="store_true", help="smallest and largest photo, 3 repeats, naive once, 5 cold starts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--photo", type=Path, help=argparse.SUPPRESS)
    return parser


def _select_photos(args: argparse.Namespace) -> list[Path]:
    """The photos to measure; --quick keeps the smallest and the largest and lowers the repeats."""
    photos_paths = sorted(args.corpus.glob(args.pattern))
    if photos_paths and args.quick:
        by_size = sorted(photos_paths, key=_pixels)
        photos_paths = sorted({by_size[0], by_size[-1]})
        args.repeats, args.naive_repeats, args.cold_starts = min(args.repeats, 3), 1, min(args.cold_starts, 5)
    return photos_paths


def _ratios(times: dict[str, list[float]], cpu: dict[str, list[float]], threads: list[int]) -> dict[str, float | None]:
    ratios: dict[str, float | None] = {}
    for t in threads:
        ratios[f"ours_vips_web_{t}t"] = _pair_ratio(times[f"ours_web_{t}t"], times.get(f"vips_web_{t}t", []))
        ratios[f"naive_over_ours_classic_{t}t"] = _pair_ratio(times.get("naive_classic", []), times.get(f"ours_classic_{t}t", []))
        ratios[f"ours_web_{t}t_over_floor"] = _pair_ratio(times[f"ours_web_{t}t"], times["floor"])
        # CPU time is what a busy machine distorts least (and what Lambda bills).
        ratios[f"cpu_ours_vips_web_{t}t"] = _pair_ratio(cpu[f"ours_web_{t}t"], cpu.get(f"vips_web_{t}t", []))
        ratios[f"cpu_naive_over_ours_classic_{t}t"] = _pair_ratio(cpu.get("naive_classic", []), cpu.get(f"ours_classic_{t}t", []))
        ratios[f"cpu_ours_web_{t}t_over_floor"] = _pair_ratio(cpu[f"ours_web_{t}t"], cpu["floor"])
    return ratios


def _measure_photo(
    path: Path, args: argparse.Namespace, threads: list[int], vips_version: str | None, handler: approaches.Handler | None
) -> dict[str, Any]:
    data = path.read_bytes()
    megapixels = _pixels(path) / 1e6
    print(f"  {path.name} ({megapixels:.1f} MP) ...", flush=True)
    times, cpu = time_photo(
        data,
        path.name,
        threads,
        repeats=args.repeats,
        naive_repeats=args.naive_repeats,
        vips=vips_version is not None,
        classic=not args.no_classic,
        handler=handler,
    )
    reference = reference_image(data)
    qual = {"ours": quality(reference, approaches.ours(data, "web", threads[-1]))}
    if vips_version:
        qual["vips"] = quality(reference, approaches.vips_web(data, threads[-1]))
    entry: dict[str, Any] = {
        "name": path.name,
        "megapixels": round(megapixels, 2),
        "bytes": len(data),
        "times_ms": times,
        "cpu_ms": cpu,
        "median_ms": {k: median(v) for k, v in times.items()},
        "median_cpu_ms": {k: median(v) for k, v in cpu.items()},
        "ratios": _ratios(times, cpu, threads),
        "quality": qual,
    }
    if not args.no_classic:
        entry["classic_outputs"] = {
            "ours": sorted(approaches.ours(data, "classic", threads[-1])),
            "naive": sorted(approaches.naive_classic(data)),
        }
    if not args.no_rss:
        kinds = ["ours_web", "ours_classic", "naive_classic"]
        kinds += (["vips_web"] if vips_version else []) + ([] if args.no_handler else ["handler_web"])
        entry["rss"] = {k: peak_rss(k, path, threads[-1]) for k in kinds}
    return entry


def _rss_50mp(args: argparse.Namespace, photos_paths: list[Path]) -> dict[str, Any] | None:
    if args.no_rss:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = max(photos_paths, key=lambda p: p.stat().st_size)
        big = make_50mp(source, Path(tmp))
        print(f"  {big.name} (50 MP, fresh processes) ...", flush=True)
        kinds = ["ours_web", "ours_classic"] + ([] if args.no_handler else ["handler_web"])
        # With the threads a 512 MB Lambda gets (worker_count caps them by memory: 1).
        rss: dict[str, Any] = {k: peak_rss(k, big, LAMBDA_512_WORKERS) for k in kinds}
        gif = make_gif(Path(tmp))
        print(f"  {gif.name} (animated, fresh processes) ...", flush=True)
        for kind in ["ours_web"] + ([] if args.no_handler else ["handler_web"]):
            rss[f"gif_{kind}"] = peak_rss(kind, gif, LAMBDA_512_WORKERS)
        return rss


def make_gif(directory: Path, frames: int = 100, width: int = 480) -> Path:
    """A 100-frame 480 px GIF, the animated input of the memory goal (bench/formats.py's too)."""
    from tests.support import formats, hostile  # the same generator as the tests

    size = (width, width * 3 // 4)
    data = formats.save_animation([hostile.palette(f) for f in formats.moving_square_frames(frames, size)], "GIF", [50] * frames)
    path = directory / f"synthetic_{frames}_frames_{width}px.gif"
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class _Run:
    """What one bench run measured, before it is written out."""

    args: argparse.Namespace
    threads: list[int]
    photos_paths: list[Path]
    vips_version: str | None
    load_before: tuple[float, float, float]
    photos: list[dict[str, Any]]
    rss_50mp: dict[str, Any] | None
    summary: dict[str, Any]


def _result(run: _Run, load_after: tuple[float, float, float]) -> dict[str, Any]:
    args = run.args
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_before": run.load_before,
            "load_average_after": load_after,
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "libvips": run.vips_version,
            "platform": platform.platform(),
        },
        "settings": {
            "repeats": args.repeats,
            "naive_repeats": args.naive_repeats,
            "threads": run.threads,
            "corpus": str(args.corpus),
            "photos": [p.name for p in run.photos_paths],
            "quick": args.quick,
        },
        "photos": run.photos,
        "rss_50mp": run.rss_50mp,
        "summary": run.summary,
        "goals": [{"goal": g, "pass": ok, "value": v} for g, ok, v in goals(run.summary, run.threads, quick=args.quick)],
    }


def _write(run: _Run, result: dict[str, Any]) -> None:
    out: Path = run.args.out
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nJSON: {out / f'bench-{stamp}.json'}")
    if not run.args.no_plot:
        plot(run.photos, run.threads, out / "time_per_mp.png")
        print(f"plot: {out / 'time_per_mp.png'}")


def _report_load(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> None:
    cpus = len(os.sched_getaffinity(0))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {cpus} CPUs")
    if max(load_before[0], load_after[0]) > cpus:
        # The scheduler shares a busy CPU per thread: libvips (several threads even at
        # concurrency 1) gets more of it than a single-threaded run, so wall ratios drift.
        print("  the machine was busy: wall-time ratios are unreliable, the CPU-time ratios next to them are the better guide")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(args.child, args.photo, int(args.threads))
        return 0

    threads = [int(t) for t in args.threads.split(",")]
    photos_paths = _select_photos(args)
    if not photos_paths:
        print(f"no photos matching {args.pattern} in {args.corpus} (--corpus DIR or IMAGE_PIPELINE_CORPUS)", file=sys.stderr)
        return 2
    vips_version = None if args.no_vips else approaches.vips_available()
    if not args.no_vips and vips_version is None:
        print("pyvips is not installed: `make bench` installs bench/requirements.txt (or pass --no-vips)", file=sys.stderr)
        return 2
    handler = None if args.no_handler else approaches.Handler()
    load_before = os.getloadavg()
    print(
        f"{len(photos_paths)} photos, {args.repeats} repeats (naive {min(args.naive_repeats, args.repeats)}), threads {threads}, "
        f"libvips {vips_version or 'skipped'}, CPUs {len(os.sched_getaffinity(0))}, load average {load_before[0]:.2f}"
    )
    photos = [_measure_photo(path, args, threads, vips_version, handler) for path in photos_paths]
    rss_50mp = _rss_50mp(args, photos_paths)
    if handler is not None:
        handler.close()
    if args.cold_starts:
        print(f"  cold start: import app in {args.cold_starts} fresh processes ...", flush=True)
    cold = cold_start(args.cold_starts)

    run = _Run(args, threads, photos_paths, vips_version, load_before, photos, rss_50mp, summarise(photos, threads, rss_50mp, cold))
    load_after = os.getloadavg()
    result = _result(run, load_after)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_table(photos, threads, run.summary, rss_50mp, quick=args.quick)
    print(printed.getvalue(), end="")
    _write(run, result)
    _report_load(load_before, load_after)
    if not (args.quick or args.no_docs):
        docs.update(args.docs, docs.header(result), printed.getvalue())
        print(f"docs: {args.docs} (the latest tables; the history is in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
