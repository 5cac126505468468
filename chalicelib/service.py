"""The use cases: process an upload, tell people about it. No boto3, no Chalice here:
adapters come in as arguments (see storage, catalog, notify)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

from chalicelib import observe
from chalicelib.catalog import Catalog, Record, sequencer_order
from chalicelib.imaging import codec, render
from chalicelib.keys import image_id_for, output_folder, source_stem, truncate_utf8
from chalicelib.models import ErrorCode, RejectedInput, Rendition, SourceChanged, SourceObject, Status, StoredRendition, Upload
from chalicelib.notify import Notifier
from chalicelib.presets import Profile
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore

log = logging.getLogger("image_pipeline")

REPAIR_EVENT = "Pipeline:Repair"  # event_name of a re-render after losing a race (see _yield_to_newer)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Pipeline:
    """Everything a use case needs, wired once per process by chalicelib.wiring (for app.py and
    the reprocess command) or by a test."""

    settings: Settings
    profile: Profile
    store: ObjectStore
    catalog: Catalog
    notifier: Notifier
    clock: Callable[[], datetime] = _now

    @property
    def limits(self) -> codec.DecodeLimits:
        return codec.DecodeLimits(self.settings.max_source_pixels, self.settings.max_frames)


@dataclass(frozen=True)
class Outcome:
    status: str  # a Status value, or "ignored"
    source_key: str
    image_id: str | None = None
    reason: str | None = None
    record: Record | None = None
    renditions: tuple[StoredRendition, ...] = field(default=())


# --- processing ---------------------------------------------------------------------------


def uploads_from_event(event: object) -> list[Upload]:
    """S3 notification records -> Uploads.

    Keys arrive URL-encoded (`+` for space) and are decoded exactly once, here, the way
    chalice's S3Event.key does for the first record. A record that is not an S3 record (no
    key, wrong types, an `s3:TestEvent`, no records at all) cannot be processed or retried
    into shape: it is reported as `image.ignored` with the reason, never raised.
    """
    what = event.get("Event") if isinstance(event, Mapping) and event.get("Event") else "an event without S3 records"
    records = _records(event, f"{what}: nothing to process")
    uploads = []
    for index, record in enumerate(records):
        s3 = record.get("s3") if isinstance(record, Mapping) else None
        obj = s3.get("object") if isinstance(s3, Mapping) else None
        bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
        key = obj.get("key") if isinstance(obj, Mapping) else None
        name = bucket.get("name") if isinstance(bucket, Mapping) else None
        if not isinstance(key, str) or not key or not isinstance(name, str) or not name or not isinstance(obj, Mapping):
            report_malformed(f"record {index} has no s3.bucket.name and s3.object.key strings", record)
            continue
        assert isinstance(record, Mapping)  # s3 came out of it
        sequencer, event_name, event_time = obj.get("sequencer"), record.get("eventName"), record.get("eventTime")
        uploads.append(
            Upload(
                bucket=name,
                key=unquote_plus(key),
                event_name=event_name if isinstance(event_name, str) else "ObjectCreated:Put",
                sequencer=sequencer if isinstance(sequencer, str) else None,
                event_time=event_time if isinstance(event_time, str) else None,
            )
        )
    return uploads


def sqs_bodies(event: object) -> list[str]:
    """The body of each SQS record; records without a string body are reported."""
    records = _records(event, "an event without SQS records: nothing to do", empty_ok=True)
    bodies = []
    for index, record in enumerate(records):
        body = record.get("body") if isinstance(record, Mapping) else None
        if isinstance(body, str):
            bodies.append(body)
        else:
            report_malformed(f"record {index} has no body string", record)
    return bodies


def sns_messages(event: object) -> list[tuple[str, str | None]]:
    """(message, subject) of each SNS record; records that are not SNS records are reported."""
    records = _records(event, "an event without SNS records: nothing to forward")
    messages = []
    for index, record in enumerate(records):
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        message = sns.get("Message") if isinstance(sns, Mapping) else None
        if not isinstance(message, str):
            report_malformed(f"record {index} has no Sns.Message string", record)
            continue
        subject = sns.get("Subject") if isinstance(sns, Mapping) else None
        messages.append((message, subject if isinstance(subject, str) else None))
    return messages


# An event no retry can make processable (not an S3/SNS/SQS record, another bucket's object, a
# reprocess message we did not write). Dropped, but never silently: every such line carries
# this error_code and counts 1 in EventsMalformed, which infra/monitoring.tf alarms on.
MALFORMED_EVENT = "malformed_event"
MALFORMED_METRICS: dict[str, tuple[float, str]] = {"EventsMalformed": (1, "Count")}


def _records(event: object, missing: str, *, empty_ok: bool = False) -> list[Any]:
    """The event's `Records` list; [] (reported as malformed, with `missing`) without one."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not (records or empty_ok):
        report_malformed(missing)
        return []
    return records


def report_malformed(reason: str, record: object = None) -> None:
    observe.emit(
        {"event": "image.ignored", "status": "ignored", "error_code": MALFORMED_EVENT, "reason": reason, "record": str(record)[:500]},
        MALFORMED_METRICS,
    )


@dataclass
class Attempt:
    """One try at one upload: what every step needs to record, publish and time it."""

    pipeline: Pipeline
    upload: Upload
    image_id: str
    sequencer: str | None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    source: SourceObject | None = None
    previous: Record | None = None

    def base_record(self, now: str) -> Record:
        source = self.source
        return {
            "image_id": self.image_id,
            "source_bucket": self.upload.bucket,
            "source_key": self.upload.key,
            "source_etag": source.etag if source else None,
            "source_version": source.version_id if source else None,
            "content_type": source.content_type if source else None,
            "bytes": source.size if source else None,
            "sequencer": self.sequencer,
            "profile": self.pipeline.profile.name,
            "profile_version": self.pipeline.profile.version,
            "created_at": (self.previous or {}).get("created_at") or now,
            "updated_at": now,
            "uploaded_at": self.upload.event_time,
            # Index keys: GSI `by_updated` (listing, updated_at) lists every image newest
            # first; GSI `by_status` (status, updated_at) filters by status. No Scan needed.
            "listing": "images",
        }

    def timed(self, stage: str, since: float) -> None:
        self.timings[f"{stage}_ms"] = _ms(since)


def process_upload(pipeline: Pipeline, upload: Upload) -> Outcome:
    """Turn one uploaded object into renditions, a catalog record, a tag and an event.

    Rejections return normally (retrying cannot help); infrastructure errors are recorded,
    published and re-raised so Lambda retries the event.
    """
    settings = pipeline.settings
    if upload.bucket != settings.upload_bucket:
        # image_id and output keys come from the key alone: another bucket's `uploads/a.jpg`
        # would overwrite ours. Only a misconfigured trigger (or a hand-made event) sends it.
        return _foreign(upload, settings)
    if not upload.key.startswith(settings.upload_prefix):
        return ignored(upload, f"outside UPLOAD_PREFIX {settings.upload_prefix!r}")
    attempt = Attempt(pipeline, upload, image_id_for(upload.key), sequencer_order(upload.sequencer))
    try:
        attempt.previous = previous = pipeline.catalog.get(attempt.image_id)
        if previous and attempt.sequencer and previous.get("sequencer", "") > attempt.sequencer:
            return ignored(upload, "a newer upload of this key was already processed", attempt.image_id)
        attempt.source = source = pipeline.store.head(upload.bucket, upload.key)
        if source is None:
            return ignored(upload, "object no longer exists", attempt.image_id)
        if source.size == 0 and upload.key.endswith("/"):
            return ignored(upload, "folder marker", attempt.image_id)
        try:
            result, stored = _read_and_render(attempt, source)
        except RejectedInput as rejection:
            return _reject(attempt, rejection)
        except SourceChanged:
            # Not a failure: S3 sends an event for the overwrite or delete, and that one
            # processes what is there now. Nothing was written yet (the read comes first).
            return ignored(upload, "the object changed while it was read; its own event handles the new state", attempt.image_id)
        return _store(attempt, source, result, stored)
    except Exception as exc:
        _fail(attempt, exc)
        raise


def _read_and_render(attempt: Attempt, source: SourceObject) -> tuple[render.RenderResult, list[StoredRendition]]:
    """Read, render, and write each rendition as soon as it is encoded (uploads overlap the
    remaining encodes). If rendering fails, what was already written is removed again."""
    pipeline, settings = attempt.pipeline, attempt.pipeline.settings
    _check_size(source, settings.max_source_bytes)
    mark = time.perf_counter()
    data = pipeline.store.get(source)
    attempt.timed("read", mark)
    mark = time.perf_counter()
    workers = render.worker_count(settings.max_workers, settings.lambda_memory_mb)
    writer = _RenditionWriter(pipeline, source, output_folder(settings, attempt.upload.key), attempt.previous, workers)
    try:
        result = render.render(
            data, pipeline.profile, pipeline.limits, source_stem(source.key), workers=workers, on_rendition=writer.submit
        )
    except BaseException:
        writer.abandon()
        raise
    attempt.timed("render", mark)
    mark = time.perf_counter()
    stored = writer.finish(result.renditions)
    attempt.timed("write", mark)  # only the uploads still running when the last encode ended
    return result, stored


def _store(attempt: Attempt, source: SourceObject, result: render.RenderResult, stored: list[StoredRendition]) -> Outcome:
    pipeline, upload = attempt.pipeline, attempt.upload
    now = pipeline.clock().isoformat(timespec="milliseconds")
    record = _compact(
        {
            **attempt.base_record(now),
            "status": Status.PROCESSED.value,
            "format": result.source.format,
            "width": result.source.width,
            "height": result.source.height,
            "frames": result.source.frames,
            "renditions": [r.as_dict() for r in stored],
            "skipped_presets": list(result.skipped) or None,
            "notes": list(result.notes) or None,
            "camera": result.source.camera.as_dict() or None,
            "processed_at": now,
        }
    )
    mark = time.perf_counter()
    try:
        recorded = pipeline.catalog.put(record)
    except Exception:
        # The record still describes the previous version: files it does not list must go.
        keep = {r["key"] for r in (attempt.previous or {}).get("renditions", [])}
        unlisted = [r.key for r in stored if r.key not in keep]
        _best_effort(lambda: pipeline.store.delete(pipeline.settings.processed_bucket, unlisted), "clean up unrecorded renditions")
        raise
    if not recorded:
        _yield_to_newer(attempt, stored)
        return ignored(upload, "a newer upload of this key was recorded meanwhile", attempt.image_id)
    _delete_stale(pipeline, attempt.previous, {r.key for r in stored})
    attempt.timed("record", mark)

    _tag(pipeline, source, Status.PROCESSED, now)
    total_bytes = sum(r.bytes for r in stored)
    summary = {
        "image_id": attempt.image_id,
        "source_bucket": upload.bucket,
        "source_key": upload.key,
        "status": Status.PROCESSED.value,
        "format": result.source.format,
        "width": result.source.width,
        "height": result.source.height,
        "bytes": source.size,
    }
    _publish(
        pipeline,
        "image.processed",
        f"Processed {_short(upload.key)}: {len(stored)} renditions",
        {**summary, "renditions": record["renditions"], "renditions_bytes": total_bytes, "occurred_at": now},
    )
    observe.emit(
        {
            "event": "image.processed",
            **summary,
            "key": upload.key,
            "renditions": len(stored),
            "bytes_written": total_bytes,
            "duration_ms": _ms(attempt.started),
            **attempt.timings,
        },
        {
            "ImagesProcessed": (1, "Count"),
            "ProcessingTime": (_ms(attempt.started), "Milliseconds"),
            "RenditionsWritten": (len(stored), "Count"),
            "BytesWritten": (total_bytes, "Bytes"),
        },
    )
    return Outcome(Status.PROCESSED.value, upload.key, attempt.image_id, record=record, renditions=tuple(stored))


def _yield_to_newer(attempt: Attempt, written: Sequence[StoredRendition]) -> None:
    """A newer event recorded this key while this one rendered, and this attempt's files may
    have landed on top of the newer ones (same keys). Remove what the newer record does not
    list and render the newer version again over what it does, so the catalog and the bucket
    agree. A repair that loses again does not recurse: the event that beat it repairs."""
    pipeline, upload = attempt.pipeline, attempt.upload
    winner = pipeline.catalog.get(attempt.image_id) or {}
    listed = {r["key"] for r in winner.get("renditions", [])}
    ours = {r.key for r in written}
    orphans = sorted(ours - listed)
    if orphans:
        _best_effort(lambda: pipeline.store.delete(pipeline.settings.processed_bucket, orphans), "remove renditions of a superseded event")
    if ours & listed and winner.get("status") == Status.PROCESSED.value and upload.event_name != REPAIR_EVENT:
        process_upload(pipeline, Upload(upload.bucket, upload.key, REPAIR_EVENT, winner.get("sequencer"), upload.event_time))


def _check_size(source: SourceObject, limit: int) -> None:
    if source.size == 0:
        raise RejectedInput(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    if source.size > limit:
        raise RejectedInput(ErrorCode.TOO_LARGE, f"{source.size:,} bytes exceeds MAX_SOURCE_BYTES ({limit:,})")


class _RenditionWriter:
    """Uploads renditions concurrently as the encoders hand them over (`submit` is called
    from encoder threads). On failure, removes what this attempt added: keys the previous
    record still lists are kept, so the catalog never points at nothing."""

    def __init__(self, pipeline: Pipeline, source: SourceObject, folder: str, previous: Record | None, workers: int) -> None:
        self.pipeline, self.source, self.folder, self.previous = pipeline, source, folder, previous
        # Uploads are I/O: a few per CPU, bounded by the client's connection pool (16).
        self.pool = ThreadPoolExecutor(max_workers=min(16, workers * 4), thread_name_prefix="upload")
        self.futures: dict[str, Future[str]] = {}
        self.lock = threading.Lock()

    def submit(self, rendition: Rendition) -> None:
        future = self.pool.submit(self._put, rendition, self.folder + rendition.filename)
        with self.lock:
            self.futures[rendition.preset] = future

    def _put(self, rendition: Rendition, key: str) -> str:
        settings = self.pipeline.settings
        self.pipeline.store.put(
            settings.processed_bucket,
            key,
            rendition.data,
            content_type=rendition.content_type,
            metadata={
                "source-key": _ascii(self.source.key),
                "source-etag": self.source.etag,
                "preset": rendition.preset,
                "profile-version": self.pipeline.profile.version,
            },
        )
        return key

    def _settle(self) -> tuple[list[str], list[BaseException]]:
        self.pool.shutdown(wait=True)
        written: list[str] = []
        errors: list[BaseException] = []
        for future in self.futures.values():
            try:
                written.append(future.result())
            except Exception as exc:  # noqa: BLE001 - collected and re-raised by the caller
                errors.append(exc)
        return written, errors

    def finish(self, renditions: Sequence[Rendition]) -> list[StoredRendition]:
        written, errors = self._settle()
        if errors:
            self._remove(written)
            raise errors[0]
        return [StoredRendition(r.preset, self.folder + r.filename, r.format, r.width, r.height, r.size) for r in renditions]

    def abandon(self) -> None:
        """Rendering failed: wait for the uploads in flight, then remove what they wrote."""
        written, _ = self._settle()
        self._remove(written)

    def _remove(self, written: list[str]) -> None:
        keep = {r["key"] for r in (self.previous or {}).get("renditions", [])}
        stale = [k for k in written if k not in keep]
        if stale:
            bucket = self.pipeline.settings.processed_bucket
            _best_effort(lambda: self.pipeline.store.delete(bucket, stale), "clean up partial renditions")


def _delete_stale(pipeline: Pipeline, previous: Record | None, current: Iterable[str]) -> None:
    """Renditions of an earlier version that the current one no longer has (preset change,
    or a smaller image replacing a larger one) are removed after the record moved on."""
    if not previous:
        return
    keep = set(current)
    stale = [r["key"] for r in previous.get("renditions", []) if r["key"] not in keep]
    if stale:
        _best_effort(lambda: pipeline.store.delete(pipeline.settings.processed_bucket, stale), "delete stale renditions")


def remove_source(pipeline: Pipeline, removal: Upload) -> Outcome:
    """An ObjectRemoved event: remove the source's renditions and mark its record `deleted`.

    Ordered like uploads, by the S3 `sequencer`: a removal older than the recorded upload is
    ignored. The record is kept as a tombstone (status `deleted`, no renditions) rather than
    removed, so a late ObjectCreated event for the deleted upload cannot bring it back. When
    the key still resolves to an object (a versioned bucket where one version was removed
    and an older one became current, or a re-upload whose event is still on its way) that
    object is processed instead: the catalog always describes what is in the bucket.
    """
    settings = pipeline.settings
    if removal.bucket != settings.upload_bucket:
        return _foreign(removal, settings)
    if not removal.key.startswith(settings.upload_prefix):
        return ignored(removal, f"outside UPLOAD_PREFIX {settings.upload_prefix!r}")
    started = time.perf_counter()
    image_id = image_id_for(removal.key)
    sequencer = sequencer_order(removal.sequencer)
    with _removal_failures(pipeline, removal, image_id, started):
        previous = pipeline.catalog.get(image_id)
        if previous and sequencer and previous.get("sequencer", "") > sequencer:
            return ignored(removal, "a newer upload of this key was already processed", image_id)
        current = pipeline.store.head(removal.bucket, removal.key)
    if current is not None:
        if previous and previous.get("status") != Status.DELETED.value and _describes(previous, current):
            return ignored(removal, "another version was removed; the recorded one is still current", image_id)
        return process_upload(pipeline, Upload(removal.bucket, removal.key, removal.event_name, removal.sequencer, removal.event_time))
    if previous is None:
        return ignored(removal, "nothing was recorded for this key", image_id)
    folder = output_folder(settings, removal.key)
    stem = source_stem(removal.key)
    doomed = sorted(
        {r["key"] for r in previous.get("renditions", [])}
        | set(previous.get("removing", []))
        # what this profile would have written, in case an upload raced this removal
        | {folder + preset.output_filename(stem) for preset in pipeline.profile.presets}
    )
    now = pipeline.clock().isoformat(timespec="milliseconds")
    tombstone = _compact(
        {
            "image_id": image_id,
            "created_at": previous.get("created_at"),
            "source_bucket": removal.bucket,
            "source_key": removal.key,
            "status": Status.DELETED.value,
            "renditions": [],
            "removing": doomed,  # kept until the files are gone, so a retry knows them
            "sequencer": sequencer or previous.get("sequencer"),
            "profile": pipeline.profile.name,
            "profile_version": pipeline.profile.version,
            "updated_at": now,
            "deleted_at": now,
            "listing": "images",
        }
    )
    # Record first, then delete: readers never see renditions listed that are already gone.
    with _removal_failures(pipeline, removal, image_id, started):
        if not pipeline.catalog.put(tombstone):
            return ignored(removal, "a newer upload of this key was recorded meanwhile", image_id)
        pipeline.store.delete(settings.processed_bucket, doomed)  # raises: the event is retried
        cleared = pipeline.catalog.put({k: v for k, v in tombstone.items() if k != "removing"})
        # Not cleared: re-uploaded and processed between our record and our delete; its files may be gone.
        latest = {} if cleared else pipeline.catalog.get(image_id) or {}
    if latest.get("status") == Status.PROCESSED.value:
        process_upload(pipeline, Upload(removal.bucket, removal.key, REPAIR_EVENT, latest.get("sequencer"), removal.event_time))
    details = {"image_id": image_id, "source_bucket": removal.bucket, "source_key": removal.key, "status": Status.DELETED.value}
    _publish(pipeline, "image.deleted", f"Deleted {_short(removal.key)}", {**details, "occurred_at": now})
    observe.emit(
        {"event": "image.deleted", **details, "key": removal.key, "renditions_removed": len(doomed), "duration_ms": _ms(started)},
        {"ImagesDeleted": (1, "Count")},
    )
    return Outcome(Status.DELETED.value, removal.key, image_id, record=tombstone)


@contextlib.contextmanager
def _removal_failures(pipeline: Pipeline, removal: Upload, image_id: str, started: float) -> Iterator[None]:
    """A removal that fails is logged, counted and announced like a failed upload, then
    re-raised for Lambda's retry: renditions of a deleted source must not linger unnoticed."""
    try:
        yield
    except Exception as exc:
        subject = f"Failed to remove renditions of {_short(removal.key)}"
        _announce_failure(
            pipeline, removal, image_id, exc, started, subject=subject, doing="removing the renditions of", details={"operation": "remove"}
        )
        raise


def _describes(record: Record, source: SourceObject) -> bool:
    """Whether `record` was made from exactly this object (version id, else ETag)."""
    if source.version_id and source.version_id != "null" and record.get("source_version"):
        return bool(record["source_version"] == source.version_id)
    return bool(record.get("source_etag") == source.etag)


def _reject(attempt: Attempt, rejection: RejectedInput) -> Outcome:
    pipeline, upload, source = attempt.pipeline, attempt.upload, attempt.source
    now = pipeline.clock().isoformat(timespec="milliseconds")
    record = _compact(
        {
            **attempt.base_record(now),
            "status": Status.REJECTED.value,
            "renditions": [],
            "error_code": rejection.code.value,
            "error": rejection.message,
            "rejected_at": now,
        }
    )
    if not pipeline.catalog.put(record):
        return ignored(upload, "a newer upload of this key was recorded meanwhile", attempt.image_id)
    # An earlier good version of this key must not keep serving renditions.
    _delete_stale(pipeline, attempt.previous, ())
    if source is not None:
        _tag(pipeline, source, Status.REJECTED, now)
    details = {
        "image_id": attempt.image_id,
        "source_bucket": upload.bucket,
        "source_key": upload.key,
        "status": Status.REJECTED.value,
        "error_code": rejection.code.value,
        "error": rejection.message,
        "bytes": record.get("bytes"),
    }
    _publish(pipeline, "image.rejected", f"Rejected {_short(upload.key)}: {rejection.code.value}", {**details, "occurred_at": now})
    observe.emit(
        {"event": "image.rejected", **details, "key": upload.key, "duration_ms": _ms(attempt.started), **attempt.timings},
        {"ImagesRejected": (1, "Count"), "ProcessingTime": (_ms(attempt.started), "Milliseconds")},
    )
    return Outcome(Status.REJECTED.value, upload.key, attempt.image_id, reason=rejection.message, record=record)


def _fail(attempt: Attempt, exc: BaseException) -> None:
    """Record, publish and log an unexpected failure; the caller re-raises for a retry."""
    pipeline, upload = attempt.pipeline, attempt.upload
    now = pipeline.clock().isoformat(timespec="milliseconds")
    error = _error_text(exc)

    def record_failure() -> None:
        previous = pipeline.catalog.get(attempt.image_id)
        if previous and previous.get("status") == Status.PROCESSED.value:
            return  # keep serving the last good version; the retry will replace it
        failed = {
            **attempt.base_record(now),
            "status": Status.FAILED.value,
            "renditions": [],
            "error_code": "internal_error",
            "error": error,
        }
        pipeline.catalog.put(_compact(failed))

    _best_effort(record_failure, "record the failure")
    _announce_failure(
        pipeline,
        upload,
        attempt.image_id,
        exc,
        attempt.started,
        subject=f"Failed {_short(upload.key)}",
        doing="processing",
        details={"bytes": attempt.source.size if attempt.source else None},
        timings=attempt.timings,
    )


def _announce_failure(
    pipeline: Pipeline,
    upload: Upload,
    image_id: str,
    exc: BaseException,
    started: float,
    *,
    subject: str,
    doing: str,
    details: Mapping[str, Any],
    timings: Mapping[str, float] | None = None,
) -> None:
    """Publish `image.failed`, write its outcome line (ImagesFailed) and log the traceback;
    the caller re-raises for Lambda's retry."""
    fields = {
        "image_id": image_id,
        "source_bucket": upload.bucket,
        "source_key": upload.key,
        "status": Status.FAILED.value,
        "error_code": "internal_error",
        "error": _error_text(exc),
        **details,
    }
    now = pipeline.clock().isoformat(timespec="milliseconds")
    _publish(pipeline, "image.failed", subject, {**fields, "occurred_at": now})
    observe.emit(
        {"event": "image.failed", **fields, "key": upload.key, "duration_ms": _ms(started), **(timings or {})},
        {"ImagesFailed": (1, "Count")},
    )
    log.error("%s %s failed; the event will be retried", doing, upload.key, exc_info=exc)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def ignored(upload: Upload, reason: str, image_id: str | None = None, *, malformed: Mapping[str, str] | None = None) -> Outcome:
    """Nothing to do for this event. `malformed` (extra fields) marks one no retry can fix:
    it is counted in EventsMalformed as well."""
    fields = {"event": "image.ignored", "status": "ignored", "image_id": image_id, "key": upload.key, "reason": reason}
    if malformed is None:
        observe.emit(fields, {})
    else:
        observe.emit({**fields, "error_code": MALFORMED_EVENT, **malformed}, MALFORMED_METRICS)
    return Outcome("ignored", upload.key, image_id, reason=reason)


def _foreign(upload: Upload, settings: Settings) -> Outcome:
    """An event naming another bucket: only a misconfigured trigger (or a hand-made event)
    sends one, so it is reported and counted like a malformed event, naming the bucket."""
    return ignored(upload, f"not in UPLOAD_BUCKET {settings.upload_bucket!r}", malformed={"bucket": upload.bucket})


def _tag(pipeline: Pipeline, source: SourceObject, status: Status, when: str) -> None:
    tags = {"pipeline-status": status.value, "processed-at": when.replace("+00:00", "Z")}
    _best_effort(lambda: pipeline.store.tag(source.bucket, source.key, tags), f"tag {source.key}")


def _publish(pipeline: Pipeline, event_type: str, subject: str, body: dict[str, Any]) -> None:
    """A failed publish never loses a processed image: it is logged and counted."""
    payload = json.dumps({"type": event_type, **body}, default=str, ensure_ascii=False)
    attributes = {"event_type": event_type, "status": str(body.get("status", ""))}
    try:
        pipeline.notifier.publish(pipeline.settings.events_topic, subject=subject, message=payload, attributes=attributes)
    except Exception as exc:  # noqa: BLE001 - the record stands; alarms watch PublishFailures
        observe.emit(
            {
                "event": "publish.failed",
                "status": "publish_failed",
                "type": event_type,
                "image_id": body.get("image_id"),
                "key": body.get("source_key"),
                "error": f"{type(exc).__name__}: {exc}",
            },
            {"PublishFailures": (1, "Count")},
        )


def _best_effort(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except Exception:
        log.warning("could not %s", what, exc_info=True)


def _compact(record: Record) -> Record:
    """Drop empty optional fields: the catalog stores none of them."""
    return {k: v for k, v in record.items() if v is not None}


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _short(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name if len(name) <= 60 else name[:57] + "..."


def _ascii(text: str) -> str:
    """S3 user metadata must be ASCII: non-ASCII characters are percent-encoded."""
    return quote(text, safe="/ ._-+()[]~,;:@!$&'*=")


# --- people ------------------------------------------------------------------------------


def describe_event(message: str, subject: str | None = None) -> tuple[str, str, str | None]:
    """(subject, readable text, event type or None) for any message from the events topic."""
    try:
        body = json.loads(message)
    except (TypeError, ValueError, RecursionError):  # "[[[[...": RecursionError, not ValueError
        body = None
    if not isinstance(body, dict):
        return (subject or "image-pipeline notification", str(message), None)
    event_type = body.get("type")
    named = body.get("source_key")
    key = named if isinstance(named, str) else "?"
    if event_type == "image.rejected":
        text = (
            f"An upload was rejected and produced no renditions.\n\nImage: {key}\nImage id: {body.get('image_id')}\n"
            f"Reason ({body.get('error_code')}): {body.get('error')}\nSize: {_human_bytes(body.get('bytes'))}\n"
        )
        return (f"Rejected upload: {_short(key)}", text, event_type)
    if event_type == "image.failed":
        removal = body.get("operation") == "remove"
        what = "Removing the renditions of a deleted source" if removal else "Processing"
        text = (
            f"{what} failed and will be retried automatically.\n\nImage: {key}\nImage id: {body.get('image_id')}\n"
            f"Error: {body.get('error')}\n"
        )
        return (f"{'Removal' if removal else 'Processing'} failed: {_short(key)}", text, event_type)
    if event_type == "image.deleted":
        text = f"A source was deleted and its renditions removed.\n\nImage: {key}\nImage id: {body.get('image_id')}\n"
        return (f"Deleted: {_short(key)}", text, event_type)
    if event_type == "image.processed":
        # Anyone allowed to publish to the topic can send this shape: only well-formed entries.
        listed = body.get("renditions")
        renditions = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
        lines = "\n".join(
            f"  - {r.get('preset')}: {r.get('width')}x{r.get('height')} {r.get('format')}, {_human_bytes(r.get('bytes'))}"
            for r in renditions
        )
        text = (
            f"Image processed.\n\nImage: {key}\nImage id: {body.get('image_id')}\nSource: {body.get('format')} "
            f"{body.get('width')}x{body.get('height')}, {_human_bytes(body.get('bytes'))}\n"
            f"Renditions ({len(renditions)}, {_human_bytes(body.get('renditions_bytes'))} in all):\n{lines}\n"
        )
        return (f"Processed: {_short(key)} ({len(renditions)} renditions)", text, event_type)
    if "AlarmName" in body:  # a CloudWatch alarm forwarded through the topic
        state = body.get("NewStateValue") or "changed state"
        text = (
            f"CloudWatch alarm {body.get('AlarmName')}: {state}.\n\n"
            f"{body.get('NewStateReason', '')}\n\n{json.dumps(body, indent=2, default=str)}"
        )
        return (f"Alarm {state}: {body.get('AlarmName')}", text, "alarm")
    return (subject or "image-pipeline notification", json.dumps(body, indent=2, ensure_ascii=False, default=str), None)


def notify_people(pipeline: Pipeline, message: str, subject: str | None = None) -> str | None:
    """Forward an events-topic message to ALERTS_TOPIC_ARN as readable text.

    Always for rejections and failures, for successes only with NOTIFY_ON_SUCCESS=true;
    anything unrecognised is forwarded as pretty JSON or plain text. Returns the message id.
    """
    settings = pipeline.settings
    title, text, event_type = describe_event(message, subject)
    if event_type in ("image.processed", "image.deleted") and not settings.notify_on_success:
        return None
    if not settings.alerts_topic_arn:
        observe.emit({"event": "alert.skipped", "reason": "ALERTS_TOPIC_ARN is not set", "subject": title}, {})
        return None
    return pipeline.notifier.publish(
        settings.alerts_topic_arn, subject=title, message=_fit_message(text), attributes={"event_type": event_type or "other"}
    )


SNS_MESSAGE_BYTES = 262_144  # SNS refuses a longer message: the alert would be lost to retries


def _fit_message(text: str) -> str:
    """A forwarded message (pretty-printed, so longer than what arrived) cut to what SNS takes."""
    data = text.encode("utf-8")
    if len(data) <= SNS_MESSAGE_BYTES:
        return text
    note = f"\n\n[cut: the message was {len(data):,} bytes, over SNS's {SNS_MESSAGE_BYTES:,}]"
    return truncate_utf8(text, SNS_MESSAGE_BYTES - len(note.encode("utf-8"))) + note


def _human_bytes(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover
