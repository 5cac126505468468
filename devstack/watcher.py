"""./inbox -> the upload bucket: every new or changed file is uploaded once it is complete.

watchdog reports file events (inotify on Linux). A file counts as complete when its writer
closes it, or when its size has not changed for a short settle time (editors and
downloaders that never close cleanly, other platforms). Hidden and partial files
(`.name`, `*.part`, `*.tmp`, `*.crdownload`, `*.swp`, `*~`) are left alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("image_pipeline.local.watcher")

PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~")


def wanted(inbox: Path, path: Path) -> bool:
    try:
        relative = path.relative_to(inbox)
    except ValueError:
        return False
    return not any(part.startswith(".") for part in relative.parts) and not path.name.endswith(PARTIAL_SUFFIXES)


def files_in(inbox: Path) -> Iterator[Path]:
    """Every wanted file under `inbox`, in a stable order."""
    for path in sorted(inbox.rglob("*")):
        if path.is_file() and wanted(inbox, path):
            yield path


def upload_key(prefix: str, inbox: Path, path: Path) -> str:
    """The S3 key of an inbox file: UPLOAD_PREFIX + its path below the inbox, sub-folders kept."""
    return prefix + path.relative_to(inbox).as_posix()


Signature = tuple[int, int]  # (size, mtime in ns): the content changed if this changed


def _signature(path: Path) -> Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


@dataclass
class _Pending:
    landed_at: float  # wall clock of the first event: what the live log measures from
    deadline: float
    closed: Signature | None = None  # the file as its writer closed it: complete
    looked: Signature | None = None  # the file at the last look, for writers that never close


class InboxWatcher(FileSystemEventHandler):
    def __init__(
        self,
        inbox: Path,
        on_file: Callable[[Path, float], None],
        on_seen: Callable[[Path, float], None] = lambda path, at: None,
        on_gone: Callable[[Path], None] = lambda path: None,
        settle_s: float = 0.3,
    ) -> None:
        """`on_seen` hears of a file as soon as it appears (still being written), `on_file`
        once it is complete (both get the time it first appeared), `on_gone` if it vanished
        before it was complete (an editor's probe file, a download moved elsewhere)."""
        self._inbox = inbox.resolve()
        self._on_file = on_file
        self._on_seen = on_seen
        self._on_gone = on_gone
        self._settle_s = settle_s
        self._pending: dict[Path, _Pending] = {}
        self._handed: dict[Path, Signature] = {}  # what each file was when handed over
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = Observer()
        self._thread = threading.Thread(target=self._settle_loop, name="inbox-settle", daemon=True)

    def start(self) -> None:
        self._observer.schedule(self, str(self._inbox), recursive=True)
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(5)
        self._thread.join(5)

    # watchdog callback (observer thread)
    def on_any_event(self, event: FileSystemEvent) -> None:
        raw = getattr(event, "dest_path", "") or event.src_path
        path = Path(raw if isinstance(raw, str) else raw.decode())
        if event.event_type == "deleted":
            with self._lock:
                gone = self._pending.pop(path, None)
                self._handed.pop(path, None)
            if gone is not None:
                self._on_gone(path)
            return
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                for child in files_in(path):  # a folder dropped or moved in at once
                    self._mark(child, closed=False)
            return
        if event.event_type in ("created", "modified", "moved", "closed") and wanted(self._inbox, path):
            self._mark(path, closed=event.event_type == "closed")

    def _mark(self, path: Path, *, closed: bool) -> None:
        signature = _signature(path)
        if signature is None:
            return
        now = time.monotonic()
        with self._lock:
            if signature == self._handed.get(path):
                return  # attributes only (a copy sets the mode after closing): nothing new
            pending = self._pending.get(path)
            seen = pending is None
            if pending is None:
                pending = self._pending[path] = _Pending(landed_at=time.time(), deadline=now)
            if closed:
                pending.closed, pending.deadline = signature, now
            elif pending.closed != signature:
                pending.closed, pending.deadline = None, now + self._settle_s
        if seen:
            self._on_seen(path, pending.landed_at)

    def _settle_loop(self) -> None:
        while not self._stop.wait(0.05):
            due, gone = self._due()
            for path in gone:
                self._on_gone(path)
            for path, pending in due:
                try:
                    self._on_file(path, pending.landed_at)
                except Exception:
                    log.exception("could not hand %s to the pipeline", path)

    def _due(self) -> tuple[list[tuple[Path, _Pending]], list[Path]]:
        """Files complete now (closed as they are, or unchanged for one settle time), and
        files gone before they were complete."""
        now = time.monotonic()
        due, gone = [], []
        with self._lock:
            for path, pending in list(self._pending.items()):
                if pending.deadline > now:
                    continue
                signature = _signature(path)
                if signature is None:
                    del self._pending[path]
                    gone.append(path)
                    continue
                if signature not in (pending.closed, pending.looked):
                    pending.looked, pending.deadline = signature, now + self._settle_s
                    continue
                del self._pending[path]
                self._handed[path] = signature
                due.append((path, pending))
        return due, gone
