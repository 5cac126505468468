"""The local stack's figures, measured the way a user meets them (`make measure-local`).

`make run` runs in a subprocess with a temporary inbox and outbox (free ports, so a running
stack is not disturbed); photos are put into the inbox and the times are read from its
live log, exactly as a user reads them:

1. Latency: the 12 MP phone photo dropped in alone, `--runs` times; the live log's time
   from the file landing in ./inbox to its last rendition in ./outbox. The median is printed.
2. Throughput: `--batch` photos (copies of the corpus photos, 8 to 22 MP) prepared beside
   the inbox and moved in at once as one folder; the batch summary's images per minute.

    .venv/bin/python -m tools.measure_local_stack [--runs 7] [--batch 20] [--corpus DIR]

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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

    def __init__(self, inbox: Path, outbox: Path, logs: Path, concurrency: int, echo: bool) -> None:
        env = {
            **os.environ,
            "LOCAL_AWS_PORT": "0",
            "LOCAL_API_PORT": "0",
            "INBOX": str(inbox),
            "OUTBOX": str(outbox),
            "LOCAL_LOG_DIR": str(logs),
            "LOCAL_CONCURRENCY": str(concurrency),
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


def measure(corpus: Path, runs: int, batch: int, concurrency: int, echo: bool) -> int:
    photos = sorted(corpus.glob("photo_*.jpg"))
    if not (corpus / PHOTO_12MP).is_file() or not photos:
        raise SystemExit(f"the photo corpus is not at {corpus} (--corpus DIR or IMAGE_PIPELINE_CORPUS)")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="measure-local-stack-") as temp:
        inbox, staging = Path(temp) / "inbox", Path(temp) / "staging"
        inbox.mkdir()  # it exists, so it is not seeded with the samples
        run = StackRun(inbox, Path(temp) / "outbox", Path(temp) / "local", concurrency, echo)
        try:
            run.wait_for(r"^ready:")
            latencies = []
            for i in range(runs):
                shutil.copy(corpus / PHOTO_12MP, inbox / f"single-{i}.jpg")
                line = parse_image_line(run.wait_for(rf"^\[.*\]\s+\S+\s+uploads/single-{i}\.jpg  "))
                if line is None or line.status != "processed":
                    raise SystemExit(f"single-{i}.jpg was not processed: {line}")
                latencies.append(line.seconds)
                run.wait_for(r"^batch done")
            load_before = os.getloadavg()[0]
            # Prepared beside the inbox and moved in at once: one batch, as a user drops a folder.
            (staging / "batch").mkdir(parents=True)
            for i in range(batch):
                photo = photos[i % len(photos)]
                shutil.copy(photo, staging / "batch" / f"{i:02d}-{photo.name}")
            (staging / "batch").rename(inbox / "batch")
            lines = run.lines_until(rf"^batch done: {batch} image")
            summary_text = lines[-1]
            summary = parse_batch_line(summary_text)
            images = [line for line in map(parse_image_line, lines) if line is not None and line.key.startswith("uploads/batch/")]
        finally:
            run.stop()
        handled = handler_seconds(Path(temp) / "local" / "logs" / "functions.log")
    rendering = [handled[f"uploads/single-{i}.jpg"] for i in range(runs) if f"uploads/single-{i}.jpg" in handled]
    print(f"measured {started:%Y-%m-%d %H:%M} UTC on {machine()}")
    print(f"12 MP photo ({PHOTO_12MP}), inbox -> last rendition in outbox: median {statistics.median(latencies):.2f} s over {runs} runs")
    print(f"  each: {', '.join(f'{t:.2f}' for t in latencies)} s")
    if len(rendering) == len(latencies):
        print(latency_split(latencies, rendering))
    if summary is None:
        raise SystemExit(f"cannot read the batch line: {summary_text!r}")
    try:
        rate = f"{images_per_minute(summary, images):.1f} images/min"
    except ValueError as exc:
        raise SystemExit(f"the live log's figures disagree: {exc}") from None
    used = sorted({photos[i % len(photos)].name for i in range(batch)})
    print(f"batch of {batch} photos (copies of {', '.join(used)}), LOCAL_CONCURRENCY={concurrency}: {rate}")
    print(f"  {summary_text}")
    print(f"load average (1 min): {load_before:.1f} before the batch, {os.getloadavg()[0]:.1f} after (other work slows every figure)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="single-photo runs for the latency median (default 7)")
    parser.add_argument("--batch", type=int, default=20, help="photos in the throughput batch (default 20)")
    parser.add_argument("--concurrency", type=int, default=2, help="LOCAL_CONCURRENCY (default 2)")
    parser.add_argument("--echo", action="store_true", help="show the stack's own output too")
    default_corpus = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--corpus", type=Path, default=default_corpus, help=f"photo folder (default {default_corpus})")
    args = parser.parse_args()
    if args.runs < 1 or args.batch < 2:
        parser.error("--runs must be at least 1 and --batch at least 2")
    return measure(args.corpus, args.runs, args.batch, args.concurrency, args.echo)


if __name__ == "__main__":
    raise SystemExit(main())
