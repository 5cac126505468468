"""What an image costs on Lambda, from the CPU time `make bench` measured: the cost table.

The model (docs/performance.md, "Cost per image and the memory size"):

- Lambda gives a function CPU in proportion to its memory: one vCPU per 1,769 MB
  (`render.LAMBDA_MB_PER_VCPU`), so 1,024 MB gets 0.58 of a core and 3,008 MB 1.70 cores.
  The handler renders with `render.worker_count(0, memory)` threads: 1 up to 1,769 MB, 2 above.
- With 1 thread, an image that costs `C1` CPU seconds on one full core takes `C1 / vCPU` seconds
  (a fraction of a core stretches the same work; more than one core does not help one thread).
- With 2 threads the work costs `C2` CPU seconds (threads add some work) and takes `W2` on two
  full cores; with `vCPU` cores it takes `max(W2, C2 / vCPU)`: no faster than on two whole
  cores, and never more CPU per second than the function has.
- Billed: duration x memory (GB-seconds, at $0.0000166667 per GB-second, x86) plus $0.20 per
  million requests. One invocation per image. Per 1,000 images: the corpus's mean image.
- The 12 MP photo's upload-to-last-rendition estimate is that duration for the 12 MP photo;
  S3's event delivery to Lambda and a cold start come on top and are not modelled.

The measured times are those of the whole handler (`handler_web_*`: download, render, uploads,
catalog write, event) when `make bench` timed it, else of rendering alone (`ours_web_*`).
The chosen size is the cheapest whose 12 MP estimate is under the latency goal; sizes within
1% of that cost count as equally cheap, and the fastest of them is taken (below 1,769 MB the
cost hardly changes with memory, since the same CPU work is billed at a proportionally higher
price for a proportionally shorter time).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.imaging import render

PRICE_PER_GB_SECOND = 0.0000166667  # x86, us-east-1, first pricing tier
PRICE_PER_REQUEST = 0.20 / 1_000_000
MEMORY_SIZES_MB = (1024, 1536, 2048, 3008)
LATENCY_GOAL_S = 1.5
COST_TIE = 0.01  # sizes within 1% of the cheapest are equally cheap
PHOTO_12MP = "photo_12mp_xiaomi_mi9t_orient6.jpg"


@dataclass(frozen=True)
class ImageTimes:
    """One photo's medians in seconds: CPU at 1 thread, and CPU and wall at 2 threads if measured."""

    name: str
    cpu_1t: float
    cpu_2t: float | None = None
    wall_2t: float | None = None


@dataclass(frozen=True)
class SizeRow:
    memory_mb: int
    vcpu: float
    threads: int
    seconds_per_image: float  # the corpus's mean image
    dollars_per_1000: float
    latency_12mp_s: float | None

    @property
    def meets_latency(self) -> bool:
        return self.latency_12mp_s is not None and self.latency_12mp_s < LATENCY_GOAL_S


def vcpus(memory_mb: int) -> float:
    return memory_mb / render.LAMBDA_MB_PER_VCPU


def duration_s(times: ImageTimes, memory_mb: int) -> float:
    """Seconds one invocation takes at `memory_mb` (the model above)."""
    cores = vcpus(memory_mb)
    if render.worker_count(0, memory_mb) == 1 or times.cpu_2t is None or times.wall_2t is None:
        return times.cpu_1t / min(cores, 1.0)
    return max(times.wall_2t, times.cpu_2t / cores)


def dollars_per_1000(seconds: float, memory_mb: int) -> float:
    return 1000 * (seconds * memory_mb / 1024 * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST)


def times_from_photos(photos: Sequence[dict[str, Any]]) -> list[ImageTimes]:
    """Each photo's medians from `make bench`'s results (bench/results/latest.json `photos`)."""
    out = []
    for photo in photos:
        cpu, wall = photo.get("median_cpu_ms", {}), photo.get("median_ms", {})
        kind = "handler_web" if cpu.get("handler_web_1t") else "ours_web"
        if not cpu.get(f"{kind}_1t"):
            continue
        cpu_2t, wall_2t = cpu.get(f"{kind}_2t"), wall.get(f"{kind}_2t")
        out.append(
            ImageTimes(
                name=str(photo["name"]),
                cpu_1t=cpu[f"{kind}_1t"] / 1000,
                cpu_2t=cpu_2t / 1000 if cpu_2t else None,
                wall_2t=wall_2t / 1000 if wall_2t else None,
            )
        )
    return out


def cost_table(images: Sequence[ImageTimes], sizes: Sequence[int] = MEMORY_SIZES_MB) -> list[SizeRow]:
    twelve = next((image for image in images if image.name == PHOTO_12MP), None)
    rows = []
    for memory in sizes:
        seconds = statistics.mean(duration_s(image, memory) for image in images)
        rows.append(
            SizeRow(
                memory_mb=memory,
                vcpu=vcpus(memory),
                threads=render.worker_count(0, memory),
                seconds_per_image=seconds,
                dollars_per_1000=dollars_per_1000(seconds, memory),
                latency_12mp_s=None if twelve is None else duration_s(twelve, memory),
            )
        )
    return rows


def choose(rows: Sequence[SizeRow]) -> SizeRow | None:
    """The cheapest size that meets the latency goal (the fastest among equally cheap ones)."""
    meeting = [row for row in rows if row.meets_latency]
    if not meeting:
        return None
    cheapest = min(row.dollars_per_1000 for row in meeting)
    tied = [row for row in meeting if row.dollars_per_1000 <= cheapest * (1 + COST_TIE)]
    return min(tied, key=lambda row: (row.latency_12mp_s or 0.0, row.memory_mb))


def summary(images: Sequence[ImageTimes]) -> dict[str, Any]:
    """The table and the choice, for the results JSON."""
    rows = cost_table(images)
    chosen = choose(rows)
    return {
        "cpu_s_per_image_1t": statistics.mean(image.cpu_1t for image in images),
        "rows": [{**row.__dict__, "meets_latency": row.meets_latency} for row in rows],
        "chosen_memory_mb": None if chosen is None else chosen.memory_mb,
    }


def table_lines(images: Sequence[ImageTimes]) -> list[str]:
    """The cost table as `make bench` prints it (and writes into docs/performance.md)."""
    if not images:
        return ["Cost per 1,000 images: no 1-thread timings in this run"]
    rows = cost_table(images)
    chosen = choose(rows)
    mean_cpu = statistics.mean(image.cpu_1t for image in images)
    lines = [
        f"Cost on Lambda (x86: ${PRICE_PER_GB_SECOND:.10f} per GB-s, $0.20 per 1M requests; 1 vCPU per {render.LAMBDA_MB_PER_VCPU} MB)",
        f"CPU seconds per image at 1 thread (mean of {len(images)} photos): {mean_cpu:.3f}",
        f"{'memory MB':>10}{'vCPU':>7}{'threads':>9}{'s/image':>9}{'$/1000 images':>15}{'12 MP upload->last rendition':>30}",
    ]
    for row in rows:
        latency = "-" if row.latency_12mp_s is None else f"{row.latency_12mp_s:.2f} s" + ("" if row.meets_latency else " (too slow)")
        mark = "  <- chosen" if row is chosen else ""
        lines.append(
            f"{row.memory_mb:>10}{row.vcpu:>7.2f}{row.threads:>9}{row.seconds_per_image:>9.3f}{row.dollars_per_1000:>15.5f}{latency:>30}{mark}"
        )
    if chosen is None:
        lines.append(f"no size keeps the 12 MP photo under {LATENCY_GOAL_S} s")
    else:
        lines.append(
            f"chosen: {chosen.memory_mb} MB, the cheapest with the 12 MP photo under {LATENCY_GOAL_S} s "
            f"(${chosen.dollars_per_1000:.5f} per 1,000 images, {chosen.latency_12mp_s:.2f} s)"
        )
    return lines
