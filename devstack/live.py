"""The live log: one readable line per image, a summary per batch, reasons for rejects.

It listens to the pipeline the way a user would see it: `landed` when the inbox watcher
hands a file over, the events topic (`image.processed` / `image.rejected` /
`image.failed`) through a subscribed queue, and the outbox mirror. An image's line is
printed when its last rendition is in ./outbox, with the time since the file landed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote_plus

from chalicelib.keys import source_folder
from chalicelib.settings import Settings
from devstack.outbox import write_atomically
from devstack.relay import LAMBDA_ASYNC_RETRIES, DeadLetter
from devstack.resources import Route

NOTE_SUFFIXES = (".rejected.txt", ".failed.txt")


def outbox_folder(settings: Settings, outbox: Path, source_key: str) -> Path:
    """The outbox folder holding a source's renditions, one subfolder per rendition version
    (mirrors keys.source_folder)."""
    return outbox / source_folder(settings, source_key)[len(settings.output_prefix) :].rstrip("/")


def note_path(settings: Settings, outbox: Path, source_key: str, suffix: str) -> Path:
    folder = outbox_folder(settings, outbox, source_key)
    return folder.with_name(folder.name + suffix)


def has_outputs(settings: Settings, outbox: Path, source_key: str) -> bool:
    """True if an earlier run left renditions or a rejection note for this source."""
    folder = outbox_folder(settings, outbox, source_key)
    if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
        return True
    return note_path(settings, outbox, source_key, ".rejected.txt").is_file()


@dataclass
class _Image:
    landed_at: float | None
    batch: int | None
    expected: set[str] | None = None
    bytes: int = 0
    failures: int = 0


@dataclass
class _Batch:
    """Files that landed while earlier ones were still in flight. It lasts from the first
    landing to the last finish: images finish (and are reported) in any order."""

    started: float  # the earliest landing
    finished: float = 0.0  # the latest finish so far
    keys: list[str] = field(default_factory=list)
    done: dict[str, str] = field(default_factory=dict)  # key -> status
    renditions: int = 0
    bytes: int = 0


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class LiveLog:
    def __init__(self, out: TextIO, settings: Settings, outbox: Path) -> None:
        self._out = out
        self._settings = settings
        self._outbox = outbox
        self._lock = threading.RLock()
        self._images: dict[str, _Image] = {}
        self._mirrored: dict[str, float] = {}  # rendition key -> when it reached the outbox
        self._owner: dict[str, str] = {}  # rendition key -> source key
        self._batch: _Batch | None = None
        self._batches = 0
        self.finished: list[tuple[str, str, float | None]] = []  # (key, status, seconds): for `make run` figures

    def say(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    # --- inputs --------------------------------------------------------------------------

    def landed(self, key: str, landed_at: float) -> None:
        with self._lock:
            if self._batch is None:
                self._batches += 1
                self._batch = _Batch(started=landed_at)
            current = self._images.get(key)
            if current is not None and current.landed_at is not None and current.batch == self._batches:
                return  # already counted (seen while it was being written)
            if key not in self._batch.keys:
                self._batch.keys.append(key)
            self._batch.started = min(self._batch.started, landed_at)
            self._images[key] = _Image(landed_at, self._batches)

    def gone(self, key: str) -> None:
        """A file that was seen but vanished before it was uploaded: not part of the batch."""
        with self._lock:
            image = self._images.get(key)
            if image is None or image.expected is not None:
                return
            del self._images[key]
            batch = self._batch
            if batch is None or key not in batch.keys or key in batch.done:
                return
            batch.keys.remove(key)
            if not batch.keys:
                self._batch = None
            elif len(batch.done) == len(batch.keys):
                self._summarise(batch)
                self._batch = None

    def mirrored(self, rendition_key: str, at: float, created: bool) -> None:
        with self._lock:
            if not created:
                self._mirrored.pop(rendition_key, None)
                return
            self._mirrored[rendition_key] = at
            source = self._owner.get(rendition_key)
            if source is not None:
                self._check_done(source)

    def event(self, envelope: Mapping[str, Any]) -> None:
        """A message from the events topic (the SNS envelope as delivered to SQS)."""
        try:
            body = json.loads(envelope.get("Message", ""))
        except (TypeError, ValueError):
            return
        if not isinstance(body, dict) or "source_key" not in body:
            return
        key = str(body["source_key"])
        kind = body.get("type")
        with self._lock:
            image = self._images.setdefault(key, _Image(None, None))
            if kind == "image.processed":
                for suffix in NOTE_SUFFIXES:
                    note_path(self._settings, self._outbox, key, suffix).unlink(missing_ok=True)
                image.expected = {str(r["key"]) for r in body.get("renditions", [])}
                image.bytes = int(body.get("renditions_bytes") or 0)
                for rendition in image.expected:
                    self._owner[rendition] = key
                self._check_done(key)
            elif kind == "image.rejected":
                reason = f"{body.get('error_code')}: {body.get('error')}"
                note = self._write_note(key, ".rejected.txt", f"rejected: {reason}\n")
                self._finish(key, "rejected", time.time(), f"{reason} (-> {self._show(note)})")
            elif kind == "image.deleted":
                self._images.pop(key, None)
                for suffix in NOTE_SUFFIXES:
                    note_path(self._settings, self._outbox, key, suffix).unlink(missing_ok=True)
                self.say(f"        deleted    {key}  (its outputs are removed from the outbox)")
            elif kind == "image.failed":
                # The relay tries each event 1 + LAMBDA_ASYNC_RETRIES times, then parks it.
                image.failures += 1
                attempts = LAMBDA_ASYNC_RETRIES + 1
                then = "retrying" if image.failures < attempts else "giving up"
                error = body.get("error_type") or body.get("error")  # the details are in the function's log
                self.say(f"        failed     {key}: {error} (attempt {image.failures} of {attempts}, {then})")

    def dead_letter(self, letter: DeadLetter) -> None:
        records = letter.event.get("Records") or [{}]
        key = (records[0].get("s3") or {}).get("object", {}).get("key")
        where = f"parked in {letter.route.dead_letter_name}"
        if key is None:
            self.say(f"        DEAD LETTER {letter.route.function_name}: {letter.error} ({where})")
            return
        key = unquote_plus(key)
        with self._lock:  # called on a relay thread; the taps update the same images and batch
            note = self._write_note(key, ".failed.txt", f"failed after {letter.attempts} attempts: {letter.error}\n{where}\n")
            self._finish(key, "FAILED", time.time(), f"{letter.error} ({where}; -> {self._show(note)})")

    def overtime(self, route: Route, seconds: float) -> None:
        self.say(
            f"        warning    {route.function_name} ran {seconds:.1f} s, over its {route.timeout_s} s Lambda timeout "
            "(AWS would have stopped it; see lambda_timeout in .chalice/config.json)"
        )

    def upload_failed(self, key: str, error: str) -> None:
        with self._lock:
            self._finish(key, "FAILED", time.time(), f"could not upload to the emulator: {error}")

    # --- output --------------------------------------------------------------------------

    def _write_note(self, key: str, suffix: str, text: str) -> Path:
        note = note_path(self._settings, self._outbox, key, suffix)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        write_atomically(note, f"{key}\n{text}at {stamp}\n".encode())
        return note

    def _show(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def _check_done(self, key: str) -> None:
        image = self._images.get(key)
        if image is None or image.expected is None:
            return
        if all(k in self._mirrored for k in image.expected):
            last = max((self._mirrored[k] for k in image.expected), default=time.time())
            count = len(image.expected)
            detail = f"{count} rendition{'s' if count != 1 else ''}  {human_bytes(image.bytes)}"
            self._finish(key, "processed", last, detail, renditions=count, size=image.bytes)

    def _finish(self, key: str, status: str, at: float, detail: str, *, renditions: int = 0, size: int = 0) -> None:
        image = self._images.pop(key, None)
        if image is None:
            return
        for rendition in image.expected or ():
            self._owner.pop(rendition, None)
        seconds = at - image.landed_at if image.landed_at is not None else None
        self.finished.append((key, status, seconds))
        batch = self._batch if image.batch == self._batches else None
        progress = "       "
        if batch is not None:
            batch.done[key] = status
            batch.finished = max(batch.finished, at)
            batch.renditions += renditions
            batch.bytes += size
            progress = f"[{len(batch.done):>{len(str(len(batch.keys)))}}/{len(batch.keys)}]".ljust(7)
        took = f"  {seconds:.2f} s" if seconds is not None else ""
        self.say(f"{progress} {status:<10} {key}  {detail}{took}")
        if batch is not None and len(batch.done) == len(batch.keys):
            self._summarise(batch)
            self._batch = None

    def _summarise(self, batch: _Batch) -> None:
        # Not the last reported image's finish: one reported earlier may have finished later.
        elapsed = max(batch.finished - batch.started, 1e-3)
        counts = {status: list(batch.done.values()).count(status) for status in ("processed", "rejected", "FAILED")}
        total = len(batch.keys)
        rate = f", {total / elapsed * 60:.1f} images/min" if total > 1 else ""
        self.say(
            f"batch done: {total} image{'s' if total != 1 else ''} in {elapsed:.1f} s "
            f"({counts['processed']} processed, {counts['rejected']} rejected, {counts['FAILED']} failed), "
            f"{batch.renditions} renditions, {human_bytes(batch.bytes)}{rate}"
        )
