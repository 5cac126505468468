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
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from bench import approaches
from chalicelib.imaging import render
from chalicelib.presets import WEB

ROOT = Path(__file__).resolve().parents[1]
# The same corpus the tests use (tests/conftest.py): a clone elsewhere points at it by env.
DEFAULT_CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))
# Goals from issue 6.
GOAL_VIPS_RATIO = 0.9
GOAL_CLASSIC_SPEEDUP = 3.0
GOAL_FLOOR_MULTIPLE = 4.0
GOAL_RSS_22MP_MB = 160.0
GOAL_RSS_50MP_MB = 512.0
GOAL_COLD_START_MS = 300.0
LAMBDA_512_WORKERS = render.worker_count(0, 512)


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


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _pair_ratio(a: list[float], b: list[float]) -> float | None:
    """Median of per-repeat ratios a[i]/b[i] (both measured in the same repeat)."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y > 0]
    return statistics.median(pairs) if pairs else None


# --- quality ------------------------------------------------------------------------------------


def reference_image(data: bytes) -> Image.Image:
    """Full decode, upright, sRGB through the embedded profile: what an ideal pipeline sees."""
    image: Image.Image = Image.open(io.BytesIO(data))
    image.load()
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    if icc and image.mode in ("RGB", "CMYK"):
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                image = converted
    return image.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = sum(v**2 for v in ImageStat.Stat(ImageChops.difference(a, b)).rms) / 3
    return 99.0 if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def quality(reference: Image.Image, outputs: dict[str, bytes]) -> dict[str, dict[str, float | int]]:
    """PSNR (dB) of each rendition against the reference resized with Lanczos to its size."""
    cover = {p.name for p in WEB.presets if p.fit == "cover"}
    report: dict[str, dict[str, float | int]] = {}
    for preset, blob in outputs.items():
        image = Image.open(io.BytesIO(blob)).convert("RGB")
        if preset in cover:
            score = max(psnr(image, ideal) for ideal in _cover_references(reference, image.size))
        else:
            score = psnr(image, reference.resize(image.size, Image.Resampling.LANCZOS))
        report[preset] = {"psnr": round(score, 2), "bytes": len(blob), "width": image.width, "height": image.height}
    return report


def _cover_references(reference: Image.Image, size: tuple[int, int]) -> list[Image.Image]:
    """The centre crop at subpixel precision (ImageOps.fit, what ours does) and at a whole
    pixel (libvips crops 37 px off a 225 px wide scaled image, not 37.5): both are correct,
    and half a pixel of shift costs ~5 dB on a detailed 150 px thumbnail."""
    exact = ImageOps.fit(reference, size, Image.Resampling.LANCZOS)
    scale = max(size[0] / reference.width, size[1] / reference.height)
    scaled = (max(size[0], math.ceil(reference.width * scale)), max(size[1], math.ceil(reference.height * scale)))
    left, top = (scaled[0] - size[0]) // 2, (scaled[1] - size[1]) // 2
    fx, fy = reference.width / scaled[0], reference.height / scaled[1]
    box = (left * fx, top * fy, (left + size[0]) * fx, (top + size[1]) * fy)
    return [exact, reference.resize(size, Image.Resampling.LANCZOS, box=box)]


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


# --- report ----------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def summarise(
    photos: list[dict[str, Any]], threads: list[int], rss_50mp: dict[str, Any] | None, cold: dict[str, Any] | None = None
) -> dict[str, Any]:
    summary: dict[str, Any] = {"cold_start": cold}
    for t in threads:
        for prefix in ("", "cpu_"):
            ratios = [p["ratios"].get(f"{prefix}ours_vips_web_{t}t") for p in photos]
            summary[f"{prefix}web_ours_over_vips_{t}t"] = _median([r for r in ratios if r is not None])
            speedups = [p["ratios"].get(f"{prefix}naive_over_ours_classic_{t}t") for p in photos]
            summary[f"{prefix}classic_speedup_{t}t"] = _median([s for s in speedups if s is not None])
            floors = [p["ratios"].get(f"{prefix}ours_web_{t}t_over_floor") for p in photos if p["megapixels"] >= 12]
            summary[f"{prefix}web_over_floor_max_{t}t_12mp_plus"] = max((f for f in floors if f is not None), default=None)
    big = [p for p in photos if p["megapixels"] >= 20]
    if big:
        summary["rss_mb_22mp"] = {k: v["maxrss_mb"] for k, v in big[0].get("rss", {}).items() if v}
    if rss_50mp:
        summary["rss_mb_50mp"] = {k: v["maxrss_mb"] for k, v in rss_50mp.items() if v}
    return summary


def goals(summary: dict[str, Any], threads: list[int], *, quick: bool = False) -> list[tuple[str, bool | None, str]]:
    out = _corpus_goals(summary, threads)
    if quick:  # the goals are medians and worst cases over the corpus: two photos cannot judge them
        out = [(text, None, f"{value}; --quick times 2 photos, not a verdict: run `make bench`") for text, _, value in out]
    return out + _process_goals(summary)


def _corpus_goals(summary: dict[str, Any], threads: list[int]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for t in threads:
        r = summary.get(f"web_ours_over_vips_{t}t")
        cpu = _fmt(summary.get(f"cpu_web_ours_over_vips_{t}t"), 2)
        out.append(
            (
                f"1. web ours/pyvips median, {t} thread(s) <= {GOAL_VIPS_RATIO}",
                None if r is None else r <= GOAL_VIPS_RATIO,
                f"{_fmt(r, 2)} (CPU time: {cpu})",
            )
        )
    for t in threads:
        s = summary.get(f"classic_speedup_{t}t")
        out.append(
            (
                f"2. classic naive/ours median, {t} thread(s) >= {GOAL_CLASSIC_SPEEDUP}x",
                None if s is None else s >= GOAL_CLASSIC_SPEEDUP,
                f"{_fmt(s, 2, 'x')} (CPU time: {_fmt(summary.get(f'cpu_classic_speedup_{t}t'), 2, 'x')})",
            )
        )
    for t in threads:
        f = summary.get(f"web_over_floor_max_{t}t_12mp_plus")
        out.append(
            (
                f"3. web ours/decode floor, worst photo >= 12 MP, {t} thread(s) <= {GOAL_FLOOR_MULTIPLE}x",
                None if f is None else f <= GOAL_FLOOR_MULTIPLE,
                f"{_fmt(f, 1, 'x')} (CPU time: {_fmt(summary.get(f'cpu_web_over_floor_max_{t}t_12mp_plus'), 1, 'x')})",
            )
        )
    return out


def _process_goals(summary: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    rss22 = summary.get("rss_mb_22mp", {}).get("ours_web")
    out.append(
        (
            f"4a. peak RSS, 22 MP JPEG, web render (whole process) <= {GOAL_RSS_22MP_MB:.0f} MB",
            None if rss22 is None else rss22 <= GOAL_RSS_22MP_MB,
            _fmt(rss22, 0, " MB"),
        )
    )
    rss50 = summary.get("rss_mb_50mp", {})
    for label, kind in (
        ("4b. whole handler, web (default) profile", "handler_web"),
        ("4c. classic render (full-size outputs)", "ours_classic"),
    ):
        value = rss50.get(kind)
        out.append(
            (
                f"{label}: peak RSS for a 50 MP JPEG, {LAMBDA_512_WORKERS} thread, <= {GOAL_RSS_50MP_MB:.0f} MB",
                None if value is None else value <= GOAL_RSS_50MP_MB,
                _fmt(value, 0, " MB"),
            )
        )
    cold = summary.get("cold_start") or {}
    cold_ms = cold.get("median_ms")
    out.append(
        (
            f'5. cold start, -X importtime "import app", median of {cold.get("runs", 0)} fresh processes < {GOAL_COLD_START_MS:.0f} ms',
            None if cold_ms is None else cold_ms < GOAL_COLD_START_MS,
            f"{_fmt(cold_ms, 0, ' ms')} (min {_fmt(cold.get('min_ms'), 0, ' ms')}, CPU {_fmt(cold.get('median_cpu_ms'), 0, ' ms')}; "
            f"Pillow plugins loaded: {', '.join(cold.get('pil_plugins', [])) or '-'})",
        )
    )
    return out


def print_table(
    photos: list[dict[str, Any]], threads: list[int], summary: dict[str, Any], rss_50mp: dict[str, Any] | None, *, quick: bool = False
) -> None:
    _print_wall(photos, threads)
    _print_cpu(photos, threads)
    _print_quality(photos)
    _print_rss(photos, rss_50mp)
    print()
    print("Goals")
    for text, ok, value in goals(summary, threads, quick=quick):
        print(f"  [{'PASS' if ok else 'FAIL' if ok is False else ' -- '}] {text}: {value}")


def _photo_cell(p: dict[str, Any], floor: float | None) -> str:
    return f"{p['name'][:35]:<36}{p['megapixels']:>5.1f}{_fmt(floor):>7}"


def _approach_head(threads: list[int]) -> str:
    head = f"{'photo':<36}{'MP':>5}{'floor':>7}"
    for t in threads:
        head += f"{f'ours{t}t':>9}{f'vips{t}t':>9}{'o/v':>6}"
    return head


def _print_wall(photos: list[dict[str, Any]], threads: list[int]) -> None:
    t_last = threads[-1]
    with_handler = any(f"handler_web_{t}t" in p["median_ms"] for p in photos for t in threads)
    print()
    print("Median ms per photo (ratios: median of per-repeat pairs)")
    head = _approach_head(threads) + "".join(f"{f'cls{t}t':>8}" for t in threads)
    head += f"{'naive':>8}{'naive/cls':>10}{f'o{t_last}t/floor':>12}"
    print(head + (f"{f'handler{t_last}t':>11}" if with_handler else ""))
    for p in photos:
        m, r = p["median_ms"], p["ratios"]
        row = _photo_cell(p, m.get("floor"))
        for t in threads:
            row += f"{_fmt(m.get(f'ours_web_{t}t')):>9}{_fmt(m.get(f'vips_web_{t}t')):>9}{_fmt(r.get(f'ours_vips_web_{t}t'), 2):>6}"
        row += "".join(f"{_fmt(m.get(f'ours_classic_{t}t')):>8}" for t in threads)
        row += f"{_fmt(m.get('naive_classic')):>8}{_fmt(r.get(f'naive_over_ours_classic_{t_last}t'), 1, 'x'):>10}"
        row += f"{_fmt(r.get(f'ours_web_{t_last}t_over_floor'), 1, 'x'):>12}"
        if f"handler_web_{t_last}t" in m:
            row += f"{_fmt(m.get(f'handler_web_{t_last}t')):>11}"
        print(row)


def _print_cpu(photos: list[dict[str, Any]], threads: list[int]) -> None:
    t_last = threads[-1]
    print()
    print("CPU ms per photo (all threads; what a busy machine distorts least, and what Lambda bills)")
    print(_approach_head(threads) + f"{'naive':>8}{f'cls{t_last}t':>8}{'naive/cls':>10}")
    for p in photos:
        c, r = p["median_cpu_ms"], p["ratios"]
        row = _photo_cell(p, c.get("floor"))
        for t in threads:
            row += f"{_fmt(c.get(f'ours_web_{t}t')):>9}{_fmt(c.get(f'vips_web_{t}t')):>9}{_fmt(r.get(f'cpu_ours_vips_web_{t}t'), 2):>6}"
        row += f"{_fmt(c.get('naive_classic')):>8}{_fmt(c.get(f'ours_classic_{t_last}t')):>8}"
        print(row + f"{_fmt(r.get(f'cpu_naive_over_ours_classic_{t_last}t'), 1, 'x'):>10}")


def _print_quality(photos: list[dict[str, Any]]) -> None:
    print()
    print("Quality (web set, PSNR dB vs full-decode Lanczos reference, min over renditions) and bytes")
    print(f"{'photo':<36}{'ours dB':>9}{'vips dB':>9}{'ours KB':>9}{'vips KB':>9}")
    for p in photos:
        q = p.get("quality", {})
        ours_q, vips_q = q.get("ours", {}), q.get("vips", {})
        row = f"{p['name'][:35]:<36}{_fmt(min((v['psnr'] for v in ours_q.values()), default=None), 1):>9}"
        row += f"{_fmt(min((v['psnr'] for v in vips_q.values()), default=None), 1):>9}"
        row += f"{_fmt(sum(v['bytes'] for v in ours_q.values()) / 1024 if ours_q else None):>9}"
        row += f"{_fmt(sum(v['bytes'] for v in vips_q.values()) / 1024 if vips_q else None):>9}"
        print(row)


def _print_rss(photos: list[dict[str, Any]], rss_50mp: dict[str, Any] | None) -> None:
    rss_rows = [(p["name"], p.get("rss", {})) for p in photos if p.get("rss")]
    if rss_50mp:
        rss_rows.append((f"synthetic 50 MP JPEG, {LAMBDA_512_WORKERS} thread", rss_50mp))
    if not rss_rows:
        return
    kinds = sorted({k for _, rss in rss_rows for k in rss})
    print()
    print("Peak RSS, MB (fresh process each: interpreter + libraries + one run)")
    print(f"{'photo':<36}" + "".join(f"{k:>15}" for k in kinds))
    for name, rss in rss_rows:
        print(f"{name[:35]:<36}" + "".join(f"{_fmt((rss.get(k) or {}).get('maxrss_mb')):>15}" for k in kinds))


def plot(photos: list[dict[str, Any]], threads: list[int], path: Path) -> None:
    """Time per megapixel of the three approaches (and the decode floor): wall time, and CPU
    time next to it, which a busy machine distorts least."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharey=True)
    series = [("naive_classic", "older scripts (classic, 1 thread)", "s", "tab:red")]
    for t in threads:
        series += [
            (f"ours_classic_{t}t", f"ours classic, {t} thread(s)", "D", "tab:orange"),
            (f"vips_web_{t}t", f"pyvips web, {t} thread(s)", "^", "tab:blue"),
            (f"ours_web_{t}t", f"ours web, {t} thread(s)", "o", "tab:green"),
        ]
    series.append(("floor", "JPEG full decode (floor)", "x", "tab:gray"))
    for ax, field, title in ((axes[0], "median_ms", "wall time"), (axes[1], "median_cpu_ms", "CPU time (all threads)")):
        for key, label, marker, colour in series:
            points = sorted((p["megapixels"], p[field][key] / p["megapixels"]) for p in photos if p[field].get(key))
            if points:
                style = "--" if key.endswith("1t") else "-"
                ax.plot([x for x, _ in points], [y for _, y in points], style, marker=marker, color=colour, label=label)
        ax.set_xlabel("source megapixels")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms per megapixel (median of repeats)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("image-pipeline: time per megapixel (web: 7 renditions; classic: 5 full-size outputs)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        "median_ms": {k: _median(v) for k, v in times.items()},
        "median_cpu_ms": {k: _median(v) for k, v in cpu.items()},
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
        return {k: peak_rss(k, big, LAMBDA_512_WORKERS) for k in kinds}


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
    print_table(photos, threads, run.summary, rss_50mp, quick=args.quick)
    _write(run, result)
    _report_load(load_before, load_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
