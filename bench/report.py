"""`make bench`'s report: the summary of a run, its goals and their verdicts, the tables it
prints and the plot it draws. Measuring is bench/run.py's job."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import cost
from chalicelib.imaging import render

# Goals from issue 16 (the "decode floor" multiple was withdrawn; the floor stays in the tables).
GOAL_VIPS_CPU_RATIO = 1.0  # CPU seconds per image, ours/libvips, at 1 and at 2 threads
GOAL_VIPS_WALL_RATIO_2T = 0.85
GOAL_CLASSIC_SPEEDUP = 3.0
GOAL_RSS_22MP_MB = 250.0  # the whole handler
GOAL_RSS_50MP_MB = 512.0
GOAL_COLD_START_MS = 300.0
LAMBDA_512_WORKERS = render.worker_count(0, 512)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


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
            summary[f"{prefix}web_ours_over_vips_{t}t"] = median([r for r in ratios if r is not None])
            speedups = [p["ratios"].get(f"{prefix}naive_over_ours_classic_{t}t") for p in photos]
            summary[f"{prefix}classic_speedup_{t}t"] = median([s for s in speedups if s is not None])
            floors = [p["ratios"].get(f"{prefix}ours_web_{t}t_over_floor") for p in photos if p["megapixels"] >= 12]
            summary[f"{prefix}web_over_floor_max_{t}t_12mp_plus"] = max((f for f in floors if f is not None), default=None)
    big = [p for p in photos if p["megapixels"] >= 20]
    if big:
        summary["rss_mb_22mp"] = {k: v["maxrss_mb"] for k, v in big[0].get("rss", {}).items() if v}
    if rss_50mp:
        summary["rss_mb_50mp"] = {k: v["maxrss_mb"] for k, v in rss_50mp.items() if v}
    if times := cost.times_from_photos(photos):
        summary["lambda_cost"] = cost.summary(times)
    return summary


def goals(summary: dict[str, Any], threads: list[int], *, quick: bool = False) -> list[tuple[str, bool | None, str]]:
    out = _corpus_goals(summary, threads)
    if quick:  # the goals are medians and worst cases over the corpus: two photos cannot judge them
        out = [(text, None, f"{value}; --quick times 2 photos, not a verdict: run `make bench`") for text, _, value in out]
    return out + _process_goals(summary)


def _corpus_goals(summary: dict[str, Any], threads: list[int]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for t in threads:
        c = summary.get(f"cpu_web_ours_over_vips_{t}t")
        wall = _fmt(summary.get(f"web_ours_over_vips_{t}t"), 2)
        out.append(
            (
                f"1. web ours/libvips CPU seconds per image, median, {t} thread(s) <= {GOAL_VIPS_CPU_RATIO}",
                None if c is None else c <= GOAL_VIPS_CPU_RATIO,
                f"{_fmt(c, 2)} (wall: {wall})",
            )
        )
    last = threads[-1]
    if last > 1:
        w = summary.get(f"web_ours_over_vips_{last}t")
        out.append(
            (
                f"1. web ours/libvips wall time, median, {last} threads <= {GOAL_VIPS_WALL_RATIO_2T}",
                None if w is None else w <= GOAL_VIPS_WALL_RATIO_2T,
                _fmt(w, 2),
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
    lambda_cost = summary.get("lambda_cost") or {}
    chosen = lambda_cost.get("chosen_memory_mb")
    row = next((r for r in lambda_cost.get("rows", []) if r["memory_mb"] == chosen), None)
    out.append(
        (
            f"3. memory size: the cheapest with the 12 MP photo under {cost.LATENCY_GOAL_S} s (cost table below)",
            None if not lambda_cost else chosen is not None,
            "-" if row is None else f"{chosen} MB, ${row['dollars_per_1000']:.4f} per 1,000 images, 12 MP {row['latency_12mp_s']:.2f} s",
        )
    )
    return out


def _process_goals(summary: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = [
        ("4. local stack at the CPU bound", None, "not measured by bench.run: `make measure-local` (docs/performance.md)"),
    ]
    rss22 = summary.get("rss_mb_22mp", {}).get("handler_web")
    out.append(
        (
            f"5a. peak RSS, 22 MP JPEG, whole handler (web) <= {GOAL_RSS_22MP_MB:.0f} MB",
            None if rss22 is None else rss22 <= GOAL_RSS_22MP_MB,
            f"{_fmt(rss22, 0, ' MB')} (render alone {_fmt(summary.get('rss_mb_22mp', {}).get('ours_web'), 0, ' MB')})",
        )
    )
    rss50 = summary.get("rss_mb_50mp", {})
    for label, kind in (
        ("5b. 50 MP JPEG, whole handler (web)", "handler_web"),
        ("5c. 100-frame 480 px GIF, whole handler (web)", "gif_handler_web"),
    ):
        value = rss50.get(kind)
        out.append(
            (
                f"{label}: peak RSS, {LAMBDA_512_WORKERS} thread, <= {GOAL_RSS_50MP_MB:.0f} MB",
                None if value is None else value <= GOAL_RSS_50MP_MB,
                _fmt(value, 0, " MB"),
            )
        )
    cold = summary.get("cold_start") or {}
    cold_ms = cold.get("median_ms")
    out.append(
        (
            f'6. (kept) cold start, importtime "import app", median of {cold.get("runs", 0)} fresh processes < {GOAL_COLD_START_MS:.0f} ms',
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
    print()
    for line in cost.table_lines(cost.times_from_photos(photos)):
        print(line)


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
        jpeg = {k: v for k, v in rss_50mp.items() if not k.startswith("gif_")}
        gif = {k.removeprefix("gif_"): v for k, v in rss_50mp.items() if k.startswith("gif_")}
        rss_rows.append((f"synthetic 50 MP JPEG, {LAMBDA_512_WORKERS} thread", jpeg))
        if gif:
            rss_rows.append((f"100-frame 480 px GIF, {LAMBDA_512_WORKERS} thread", gif))
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
    fig.suptitle("image-pipeline: time per megapixel (web: 10 renditions incl. AVIF; classic: 5 full-size outputs)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
