"""The local stack's figures, measured the way a user meets them (`make measure-local`).

`make run` runs in a subprocess with a temporary inbox and outbox (free ports, so a running
stack is not disturbed); photos are put into the inbox and the times are read from its
live log, exactly as a user reads them:

1. Latency: the 12 MP phone photo dropped in alone, `--runs` times; the live log's time
   from the file landing in ./inbox to its last rendition in ./outbox. The median is printed.
2. Throughput: `--batch` photos (copies of the corpus photos, 8 to 22 MP) prepared beside
   the inbox and moved in at once as one folder; the batch summary's images per minute, next
   to the CPU bound: cores x 60 / the CPU seconds one image cost the whole stack (its worker
   processes, itself, the emulator, the API server; read from /proc around the batch), both
   from the same batch. Their ratio is the share of the machine's cores the stack used.
3. With `--burst N`: N files at once (photos, copies under other names, hostile files), each
   of which must end with exactly one outcome in the catalog, the outbox and the live log,
   with every queue (dead-letter queues included) empty afterwards; and its throughput.

    .venv/bin/python -m tools.measure_local_stack [--runs 7] [--batch 20] [--burst 300] [--workers threads] [--corpus DIR]

Timings depend on the machine and on whatever else runs on it: the machine, the date and
the load average are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.settings import LOCAL_WORKER_KINDS
from tools import burst, stack_cpu

ROOT = Path(__file__).resolve().parents[1]
PHOTO_12MP = "photo_12mp_xiaomi_mi9t_orient6.jpg"

# The live log's formats (devstack/live.py): an image's line ends with the seconds
# from landing to its last rendition; the batch summary carries images per minute.
_IMAGE_LINE = re.compile(r"^\[\s*\d+/\d+\]\s+(?P<status>\S+)\s+(?P<key>.+?)  .*  (?P<seconds>\d+\.\d+) s$")
_BATCH_LINE = re.compile(r"^batch done: (?P<count>\d+) images? in (?P<seconds>[\d.]+) s .*?(?:, (?P<rate>[\d.]+) images/min)?$")


@dataclass(frozen=True)
class ImageLine:
    status: str
    key: str
    seconds: float


@dataclass(frozen=True)
class BatchLine:
    count: int
    seconds: float
    per_minute: float | None


def parse_image_line(line: str) -> ImageLine | None:
    match = _IMAGE_LINE.match(line)
    if match is None:
        return None
    return ImageLine(match["status"], match["key"], float(match["seconds"]))


def parse_batch_line(line: str) -> BatchLine | None:
    match = _BATCH_LINE.match(line)
    if match is None:
        return None
    rate = match["rate"]
    return BatchLine(int(match["count"]), float(match["seconds"]), float(rate) if rate else None)


def images_per_minute(summary: BatchLine, images: list[ImageLine]) -> float:
    """The batch's rate, checked against its own image lines: a batch lasts from its first
    landing to its last finish, so never less than its slowest image (the live log once summed
    up with the image reported last, which need not be the one that finished last)."""
    slowest = max((image.seconds for image in images), default=0.0)
    if summary.seconds + 0.06 < slowest:  # + the rounding of both lines
        raise ValueError(f"the batch line says {summary.seconds:.1f} s, but one of its images took {slowest:.2f} s")
    return summary.per_minute if summary.per_minute is not None else summary.count / max(summary.seconds, 1e-3) * 60


def latency_split(latencies: list[float], handled: list[float]) -> str:
    """The handler's own share of the latency, and the local stack's around it when the figures
    allow it: the latency ends when the last rendition reaches the outbox, but the handler
    returns after writing the catalog record and the event, so the two can overlap."""
    line = f"  of which process_upload itself (its duration_ms): median {statistics.median(handled):.2f} s"
    rest = [total - own for total, own in zip(latencies, handled, strict=True)]
    if min(rest) < 0:
        return line + " (it returns after its last rendition is in the outbox: record and event still to write)"
    return line + f"; the local stack around it (upload, notification, relay, outbox mirror): median {statistics.median(rest):.2f} s"


def handler_seconds(functions_log: Path) -> dict[str, float]:
    """Source key -> the handler's own `duration_ms` (its image.processed log line), so the
    latency splits into rendering and the local stack's share (upload, notification, relay,
    outbox mirror)."""
    durations: dict[str, float] = {}
    for line in functions_log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if isinstance(fields, dict) and fields.get("event") == "image.processed" and "duration_ms" in fields:
            durations[str(fields.get("key"))] = float(fields["duration_ms"]) / 1000
    return durations


def machine() -> str:
    """What the figures were measured on, for the README."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


class StackRun:
    """`make run` in its own process group; its console lines are collected as they come."""

    def __init__(self, inbox: Path, outbox: Path, logs: Path, options: Options, echo: bool) -> None:
        env = {
            **os.environ,
            "LOCAL_AWS_PORT": "0",
            "LOCAL_API_PORT": "0",
            "INBOX": str(inbox),
            "OUTBOX": str(outbox),
            "LOCAL_LOG_DIR": str(logs),
            "LOCAL_CONCURRENCY": str(options.concurrency),
            "LOCAL_WORKERS": options.workers,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        self._echo = echo
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],  # noqa: S607 - make from PATH, as a user runs it
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self._echo:
                print(f"  | {line}", end="", flush=True)
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 600) -> str:
        return self.lines_until(pattern, timeout)[-1]

    def lines_until(self, pattern: str, timeout: float = 600) -> list[str]:
        """The console lines up to and including the first one matching `pattern`."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if re.search(pattern, line):
                return seen
        raise SystemExit(f"no line matching {pattern!r} within {timeout:.0f} s (rerun with --echo to see the stack's output)")

    def stop(self, timeout: float = 120) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:  # a stack that does not stop must not outlive the measurement
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass(frozen=True)
class Options:
    corpus: Path
    runs: int
    batch: int
    concurrency: int
    workers: str
    burst: int
    echo: bool


def measure(options: Options) -> int:
    corpus = options.corpus
    photos = sorted(corpus.glob("photo_*.jpg"))
    if not (corpus / PHOTO_12MP).is_file() or not photos:
        raise SystemExit(f"the photo corpus is not at {corpus} (--corpus DIR or IMAGE_PIPELINE_CORPUS)")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="measure-local-stack-") as temp:
        inbox, staging = Path(temp) / "inbox", Path(temp) / "staging"
        inbox.mkdir()  # it exists, so it is not seeded with the samples
        run = StackRun(inbox, Path(temp) / "outbox", Path(temp) / "local", options, options.echo)
        try:
            ready = run.wait_for(r"^ready:")
            latencies = [_single(run, corpus, inbox, i) for i in range(options.runs)]
            batch = _batch(run, photos, options.batch, inbox, staging)
            burst = _burst(run, ready, photos, options.burst, temp=Path(temp)) if options.burst else None
        finally:
            run.stop()
        handled = handler_seconds(Path(temp) / "local" / "logs" / "functions.log")
    rendering = [handled[f"uploads/single-{i}.jpg"] for i in range(options.runs) if f"uploads/single-{i}.jpg" in handled]
    print(f"measured {started:%Y-%m-%d %H:%M} UTC on {machine()}")
    median = statistics.median(latencies)
    print(f"12 MP photo ({PHOTO_12MP}), inbox -> last rendition in outbox: median {median:.2f} s over {options.runs} runs")
    print(f"  each: {', '.join(f'{t:.2f}' for t in latencies)} s")
    if len(rendering) == len(latencies):
        print(latency_split(latencies, rendering))
    used = sorted({photos[i % len(photos)].name for i in range(options.batch)})
    print(
        f"batch of {options.batch} photos (copies of {', '.join(used)}), "
        f"LOCAL_CONCURRENCY={options.concurrency}, LOCAL_WORKERS={options.workers}:"
    )
    for line in batch.report():
        print(f"  {line}")
    if burst is not None:
        for line in burst:
            print(line)
    return 0


def _single(run: StackRun, corpus: Path, inbox: Path, i: int) -> float:
    shutil.copy(corpus / PHOTO_12MP, inbox / f"single-{i}.jpg")
    line = parse_image_line(run.wait_for(rf"^\[.*\]\s+\S+\s+uploads/single-{i}\.jpg  "))
    if line is None or line.status != "processed":
        raise SystemExit(f"single-{i}.jpg was not processed: {line}")
    run.wait_for(r"^batch done")
    return line.seconds


def _batch(run: StackRun, photos: list[Path], count: int, inbox: Path, staging: Path) -> Throughput:
    load_before = os.getloadavg()[0]
    # Prepared beside the inbox and moved in at once: one batch, as a user drops a folder.
    (staging / "batch").mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        shutil.copy(photo, staging / "batch" / f"{i:02d}-{photo.name}")
    before = stack_cpu.sample(run.process.pid)
    (staging / "batch").rename(inbox / "batch")
    lines = run.lines_until(rf"^batch done: {count} image")
    cpu = stack_cpu.sample(run.process.pid).since(before)
    summary = parse_batch_line(lines[-1])
    if summary is None:
        raise SystemExit(f"cannot read the batch line: {lines[-1]!r}")
    images = [line for line in map(parse_image_line, lines) if line is not None and line.key.startswith("uploads/batch/")]
    try:
        rate = images_per_minute(summary, images)
    except ValueError as exc:
        raise SystemExit(f"the live log's figures disagree: {exc}") from None
    return Throughput(count, rate, cpu, _cores(), lines[-1], load_before, os.getloadavg()[0])


def _burst(run: StackRun, ready: str, photos: list[Path], count: int, *, temp: Path) -> list[str]:
    """`count` files at once (photos, copies under other names, hostile files): every one
    must end with exactly one outcome, in the catalog and the outbox, and no queue may hold
    anything afterwards."""
    import boto3

    from chalicelib.settings import Settings

    inbox, staging, outbox = temp / "inbox", temp / "staging", temp / "outbox"
    fixtures = sorted((ROOT / "tests" / "fixtures").glob("orient_*.jpg"))
    expected = burst.make_burst(staging / "burst", count, [*photos, *fixtures], hostile=count // 5)
    load_before, before = os.getloadavg()[0], stack_cpu.sample(run.process.pid)
    (staging / "burst").rename(inbox / "burst")
    lines = run.lines_until(rf"^batch done: {count} image", timeout=max(600, count * 6))
    cpu = stack_cpu.sample(run.process.pid).since(before)
    summary = parse_batch_line(lines[-1])
    aws = re.search(r"aws=(\S+)", ready)
    if summary is None or aws is None:
        raise SystemExit(f"cannot read the stack's lines: {ready!r}, {lines[-1]!r}")
    clients = {name: boto3.client(name, endpoint_url=aws[1], region_name="us-east-1") for name in ("sqs", "dynamodb")}
    settings = Settings.for_stage("dev", ROOT / ".chalice" / "config.json")
    queues = burst.wait_for_empty_queues(clients["sqs"])
    items = burst.catalog_items(clients["dynamodb"], settings.catalog_table, "uploads/burst/")
    check = burst.check_burst(expected, key_of=lambda name: f"burst/{name}", items=items, outbox=outbox, queues=queues)
    reported = Counter(line.key for line in map(parse_image_line, lines) if line is not None and line.key.startswith("uploads/burst/"))
    check.problems += [f"{key}: {n} lines in the live log" for key, n in reported.items() if n != 1]
    check.problems += [f"uploads/burst/{name}: no line in the live log" for name in expected if f"uploads/burst/{name}" not in reported]
    rate = Throughput(count, images_per_minute(summary, []), cpu, _cores(), lines[-1], load_before, os.getloadavg()[0])
    kinds = Counter(expected.values())
    out = [f"burst of {count} files at once ({kinds['processed']} to process, {kinds['rejected']} to reject):"]
    out += [f"  {line}" for line in rate.report()]
    out.append(f"  catalog: {dict(check.catalog)}; queues left non-empty: {check.queues or 'none'}")
    out.append("  every file has exactly one outcome, the expected one: " + ("yes" if not check.problems else "NO"))
    out += [f"    {problem}" for problem in check.problems[:20]]
    return out


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Throughput:
    """A batch's rate next to the CPU bound: cores x 60 / the CPU seconds one image cost the
    whole stack (its worker processes, itself, the emulator, the API server) in the same run."""

    count: int
    per_minute: float
    cpu: stack_cpu.CpuSample
    cores: int
    summary: str
    load_before: float
    load_after: float

    @property
    def cpu_per_image(self) -> float:
        return self.cpu.total / self.count

    @property
    def bound(self) -> float:
        return self.cores * 60 / max(self.cpu_per_image, 1e-6)

    def report(self) -> list[str]:
        by_cost = sorted(self.cpu.by_role.items(), key=lambda kv: -kv[1])
        roles = ", ".join(f"{role} {seconds:.1f}" for role, seconds in by_cost if seconds >= 0.05)
        machine = self.cpu.machine_busy / max(self.cpu.machine_total, 1e-6)
        ours = self.cpu.total / max(self.cpu.machine_total, 1e-6)
        return [
            self.summary,
            f"{self.per_minute:.1f} images/min; CPU bound {self.bound:.1f} images/min ({self.cores} cores x 60 / "
            f"{self.cpu_per_image:.2f} CPU s per image) -> {self.per_minute / self.bound:.0%} of the bound",
            f"CPU seconds by process: {roles}",
            f"the machine's CPUs were {machine:.0%} busy during it ({ours:.0%} with the stack's work, the rest other work): "
            f"the stack used {self.free_share:.0%} of the CPU time other work left it; "
            f"load average {self.load_before:.1f} before, {self.load_after:.1f} after",
        ]

    @property
    def free_share(self) -> float:
        """The stack's CPU time over what the machine had minus what other work took: 100%
        means no core sat idle while images waited (on a shared machine, the bound above
        cannot be reached, but this can)."""
        other = max(self.cpu.machine_busy - self.cpu.total, 0.0)
        return self.cpu.total / max(self.cpu.machine_total - other, 1e-6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="single-photo runs for the latency median (default 7)")
    parser.add_argument("--batch", type=int, default=20, help="photos in the throughput batch (default 20)")
    cores = _cores()
    parser.add_argument("--concurrency", type=int, default=cores, help=f"LOCAL_CONCURRENCY (default: the CPUs, {cores})")
    parser.add_argument("--workers", choices=LOCAL_WORKER_KINDS, default="processes", help="LOCAL_WORKERS (default processes)")
    parser.add_argument("--burst", type=int, default=0, help="then drop this many files at once and check each has one outcome (e.g. 300)")
    parser.add_argument("--echo", action="store_true", help="show the stack's own output too")
    default_corpus = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--corpus", type=Path, default=default_corpus, help=f"photo folder (default {default_corpus})")
    args = parser.parse_args()
    if args.runs < 1 or args.batch < 2 or args.burst < 0:
        parser.error("--runs must be at least 1, --batch at least 2, --burst not negative")
    return measure(Options(args.corpus, args.runs, args.batch, args.concurrency, args.workers, args.burst, args.echo))


if __name__ == "__main__":
    raise SystemExit(main())
