"""Re-render existing sources after the presets changed, in bounded, resumable batches.

    python -m tools.reprocess --stage dev            # list, skip up-to-date, enqueue to SQS
    python -m tools.reprocess --stage dev --direct   # render here, no queue (local, small jobs)

The command lists `UPLOAD_PREFIX` one page (`--batch-size` keys) at a time, skips sources whose
catalog record already carries the active profile's version, and hands the rest on: in AWS
to the `REPROCESS_QUEUE` SQS queue, whose `reprocess` handler (chalicelib/reprocess.py)
renders them (fan-out, retries, a dead-letter queue), or with `--direct` to the pipeline in
this process. After each page the cursor (last key listed) is saved to `--cursor-file`, so an
interrupted run resumes where it stopped; a new profile version starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from chalicelib import keys
from chalicelib.adapters import Adapters
from chalicelib.reprocess import Job, reprocess_one, up_to_date
from chalicelib.storage import SourceLister


class WorkQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...


class SqsWorkQueue:
    """Sends in batches of 10 (SendMessageBatch); any entry SQS refuses raises."""

    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._name = queue_name
        self._url: str | None = None

    def send(self, bodies: Sequence[str]) -> None:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"])
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
            failed = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries).get("Failed") or []
            if failed:
                raise RuntimeError(f"SQS refused {len(failed)} message(s): {failed[0].get('Message')}")


class MemoryWorkQueue:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> None:
        self.bodies.extend(bodies)


@dataclass
class Progress:
    profile_version: str
    cursor: str | None = None  # last key listed; the next page starts after it
    listed: int = 0
    submitted: int = 0
    skipped: int = 0
    failed: int = 0
    batches: int = 0
    done: bool = False

    def line(self) -> str:
        state = "done" if self.done else f"cursor={self.cursor!r}"
        return (
            f"reprocess: batch {self.batches}: listed {self.listed}, submitted {self.submitted}, "
            f"up to date {self.skipped}, failed {self.failed}; {state}"
        )


def load_progress(path: Path | None, profile_version: str, restart: bool) -> Progress:
    """The saved cursor, unless `restart`, the file is absent, or the presets changed since."""
    if path is None or restart or not path.exists():
        return Progress(profile_version)
    try:
        saved = Progress(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return Progress(profile_version)
    return saved if saved.profile_version == profile_version else Progress(profile_version)


def save_progress(path: Path | None, progress: Progress) -> None:
    if path is None:
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(asdict(progress)) + "\n")
    os.replace(temporary, path)  # atomic: an interrupted run never leaves half a cursor


def run(
    pipeline: Adapters,
    lister: SourceLister,
    submit: Callable[[list[Job]], int],
    *,
    batch_size: int = 100,
    max_batches: int | None = None,
    cursor_file: Path | None = None,
    restart: bool = False,
    report: Callable[[str], None] = lambda _: None,
) -> Progress:
    """Walk the upload prefix in pages of `batch_size` keys; `submit` gets the jobs of each
    page and returns how many of them failed. Returns the progress (saved after every page)."""
    settings = pipeline.settings
    progress = load_progress(cursor_file, pipeline.profile.version, restart)
    if progress.done:
        report(f"reprocess: already complete for profile version {progress.profile_version} (use --restart to run again)")
        return progress
    pages = 0
    while max_batches is None or pages < max_batches:
        listed, more = lister.list_keys(settings.upload_bucket, settings.upload_prefix, start_after=progress.cursor, limit=batch_size)
        jobs = []
        for key in listed:
            if key.endswith("/"):
                continue  # folder markers are not images
            if up_to_date(pipeline.catalog.get(keys.image_id_for(key)), pipeline.profile.version):
                progress.skipped += 1
            else:
                jobs.append(Job(settings.upload_bucket, key, pipeline.profile.version))
        progress.failed += submit(jobs) if jobs else 0
        progress.submitted += len(jobs)
        progress.listed += len(listed)
        progress.batches += 1
        progress.cursor = listed[-1] if listed else progress.cursor
        progress.done = not more
        pages += 1
        save_progress(cursor_file, progress)
        report(progress.line())
        if progress.done:
            break
    return progress


def enqueue(queue: WorkQueue) -> Callable[[list[Job]], int]:
    def submit(jobs: list[Job]) -> int:
        queue.send([job.body() for job in jobs])
        return 0

    return submit


def directly(pipeline: Adapters) -> Callable[[list[Job]], int]:
    """Render in this process. A failure is already recorded and logged by the pipeline; it
    is counted and the walk goes on (the source stays out of date, so a rerun retries it)."""

    def submit(jobs: list[Job]) -> int:
        failed = 0
        for job in jobs:
            try:
                reprocess_one(pipeline, job)
            except Exception:  # noqa: BLE001 - counted; the record says failed
                failed += 1
        return failed

    return submit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="Chalice stage whose settings to use (environment variables win)")
    parser.add_argument("--config", type=Path, default=Path(".chalice/config.json"))
    parser.add_argument("--direct", action="store_true", help="render in this process instead of enqueueing to REPROCESS_QUEUE")
    parser.add_argument("--batch-size", type=int, default=100, help="keys listed per batch (1-1000)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop after this many batches (resume later)")
    parser.add_argument("--cursor-file", type=Path, default=None, help="default: .reprocess-<stage>.json")
    parser.add_argument("--restart", action="store_true", help="ignore the saved cursor and start from the first key")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000")

    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib import aws, wiring
    from chalicelib.settings import Settings, SettingsError
    from chalicelib.storage import S3ObjectStore

    try:
        settings = Settings.for_stage(args.stage, args.config)
    except SettingsError as exc:
        parser.error(str(exc))
    pipeline = wiring.aws_pipeline(settings)
    cursor_file = args.cursor_file or Path(f".reprocess-{args.stage}.json")
    submit = directly(pipeline) if args.direct else enqueue(SqsWorkQueue(aws.client("sqs", settings.region), settings.reprocess_queue))
    started = time.perf_counter()
    # A finished walk for these presets: run() says so; its saved totals are not this run's.
    already_done = load_progress(cursor_file, pipeline.profile.version, args.restart).done
    try:
        progress = run(
            pipeline,
            S3ObjectStore(aws.client("s3", settings.region)),
            submit,
            batch_size=args.batch_size,
            max_batches=args.max_batches,
            cursor_file=cursor_file,
            restart=args.restart,
            report=lambda text: print(text, file=sys.stderr, flush=True),
        )
    except (BotoCoreError, ClientError) as exc:
        # The cursor saved so far stays valid: rerunning resumes after the last finished batch.
        where = f"the emulator at {settings.endpoint_url}" if settings.endpoint_url else f"AWS ({settings.region})"
        print(
            f"reprocess: cannot reach {where}: {exc}\n"
            "  For the local stack: start `make run`, then AWS_ENDPOINT_URL=http://127.0.0.1:5000 "
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing make reprocess",
            file=sys.stderr,
        )
        return 2
    if already_done:
        return 0
    where = "rendered here" if args.direct else f"queued on {settings.reprocess_queue}"
    print(
        f"reprocess: {progress.submitted} {where}, {progress.skipped} already up to date, {progress.failed} failed, "
        f"{progress.listed} listed in {time.perf_counter() - started:.1f} s; "
        + ("complete" if progress.done else f"resume with the same command (cursor in {cursor_file})"),
        file=sys.stderr,
    )
    return 1 if progress.failed else 0


if __name__ == "__main__":
    sys.exit(main())
