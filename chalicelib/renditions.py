"""Writing and removing renditions in the processed bucket: the concurrent writer that uploads
each rendition as soon as it is encoded, and the clean-up of files no record lists."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from chalicelib.adapters import Adapters
from chalicelib.models import Rendition, SourceObject
from chalicelib.outcomes import best_effort
from chalicelib.records import ImageRecord, RenditionRecord


def listed(record: ImageRecord | None) -> set[str]:
    """The rendition keys a record lists."""
    return record.rendition_keys if record else set()


def delete(adapters: Adapters, keys: Sequence[str], what: str) -> None:
    """Best effort: a key left behind is logged, never an error for the event."""
    if keys:
        best_effort(lambda: adapters.store.delete(adapters.settings.processed_bucket, list(keys)), what)


def delete_unlisted(adapters: Adapters, written: Iterable[str], record: ImageRecord | None, what: str) -> None:
    """Remove the keys this attempt wrote that `record` (what the catalog holds) does not list."""
    keep = listed(record)
    delete(adapters, [k for k in written if k not in keep], what)


def delete_stale(adapters: Adapters, previous: ImageRecord | None, current: Iterable[str]) -> None:
    """Renditions of an earlier version that the current one no longer has (preset change,
    or a smaller image replacing a larger one) are removed after the record moved on."""
    keep = set(current)
    delete(adapters, sorted(listed(previous) - keep), "delete stale renditions")


class RenditionWriter:
    """Uploads renditions concurrently as the encoders hand them over (`submit` is called
    from encoder threads). On failure, removes what this attempt added: keys the previous
    record still lists are kept, so the catalog never points at nothing."""

    def __init__(
        self,
        adapters: Adapters,
        source: SourceObject,
        folder: str,
        previous: ImageRecord | None,
        workers: int,
        *,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.adapters, self.source, self.folder, self.previous = adapters, source, folder, previous
        self.check = check  # raises once the attempt is abandoned at its deadline: nothing more is written
        # Uploads are I/O: a few per CPU, bounded by the client's connection pool (16).
        self.pool = ThreadPoolExecutor(max_workers=min(16, workers * 4), thread_name_prefix="upload")
        self.futures: dict[str, Future[str]] = {}
        self.lock = threading.Lock()

    def submit(self, rendition: Rendition) -> None:
        future = self.pool.submit(self._put, rendition, self.folder + rendition.filename)
        with self.lock:
            self.futures[rendition.preset] = future

    def _put(self, rendition: Rendition, key: str) -> str:
        if self.check is not None:
            self.check()
        self.adapters.store.put(
            self.adapters.settings.processed_bucket,
            key,
            rendition.data,
            content_type=rendition.content_type,
            metadata={
                "source-key": _ascii(self.source.key),
                "source-etag": self.source.etag,
                "preset": rendition.preset,
                "profile-version": self.adapters.profile.version,
            },
        )
        return key

    def _settle(self) -> tuple[list[str], list[BaseException]]:
        self.pool.shutdown(wait=True)
        written: list[str] = []
        errors: list[BaseException] = []
        with self.lock:  # encoders may still be submitting (an attempt abandoned at its deadline)
            futures = list(self.futures.values())
        for future in futures:
            try:
                written.append(future.result())
            except Exception as exc:  # noqa: BLE001 - collected and re-raised by the caller
                errors.append(exc)
        return written, errors

    def finish(self, renditions: Sequence[Rendition]) -> list[RenditionRecord]:
        written, errors = self._settle()
        if errors:
            self._remove(written)
            raise errors[0]
        return [
            RenditionRecord(
                r.preset,
                self.folder + r.filename,
                r.format,
                r.width,
                r.height,
                r.size,
                True if r.animated else None,
                r.frames if r.animated else None,
            )
            for r in renditions
        ]

    def abandon(self) -> None:
        """Rendering failed: wait for the uploads in flight, then remove what they wrote."""
        written, _ = self._settle()
        self._remove(written)

    def _remove(self, written: list[str]) -> None:
        delete_unlisted(self.adapters, written, self.previous, "clean up partial renditions")


def _ascii(text: str) -> str:
    """S3 user metadata must be ASCII: non-ASCII characters are percent-encoded."""
    return quote(text, safe="/ ._-+()[]~,;:@!$&'*=")
