"""The upload use case: an uploaded object -> renditions, a catalog record, a tag and an event.

No boto3, no Chalice here: the adapters come in as arguments (see chalicelib.adapters).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import forms, likeness, renditions
from chalicelib.adapters import Adapters
from chalicelib.catalog import LISTING, sequencer_order
from chalicelib.deadline import Cancelled, Deadline, OutOfTime, Watch
from chalicelib.facts import Facts
from chalicelib.identity import UPLOADED_BY
from chalicelib.imaging import complexity, render
from chalicelib.keys import image_id_for, output_folder, rendition_version, source_stem
from chalicelib.models import ErrorCode, RejectedInput, SourceChanged, SourceObject, Status, Upload
from chalicelib.outcomes import (
    INTERNAL_ERROR,
    Notice,
    Outcome,
    announce,
    announce_failure,
    best_effort,
    ignored,
    ms,
    outside_our_uploads,
    short,
)
from chalicelib.records import FAILED_MESSAGE, ImageRecord, RenditionRecord

REPAIR_EVENT = "Pipeline:Repair"  # event_name of a re-render after losing a race (see _yield_to_newer)
NEWER_RECORDED = "a newer upload of this key was recorded meanwhile"


def handle_upload(adapters: Adapters, upload: Upload, deadline: Deadline | None = None) -> Outcome:
    """An ObjectCreated event (or a reprocess job) for one object.

    Rejections return normally (retrying cannot help); infrastructure errors are recorded,
    published and re-raised so Lambda retries the event. With a `deadline` (from the Lambda
    context) the outcome is recorded before the function's time runs out (see _within).
    """
    outside = outside_our_uploads(adapters, upload)
    if outside is not None:
        return outside
    return render_current(adapters, upload) if deadline is None else _within(adapters, upload, deadline)


def render_current(adapters: Adapters, upload: Upload, watch: Watch | None = None) -> Outcome:
    """Render and record what the bucket holds under `upload.key` now: the step an upload, a
    removal that finds the key still there, and a lost race share.

    An attempt that lost the race to a newer event may have written over the newer files:
    the newer version is rendered once more here. A repair that loses again does not
    repair: the event that beat it does."""
    outcome, repair = _attempt(adapters, upload, watch)
    if repair is not None:
        _attempt(adapters, repair, watch)
    return outcome


def _within(adapters: Adapters, upload: Upload, deadline: Deadline) -> Outcome:
    """Run the attempt in a worker thread; if it is not done at the deadline, cancel it and
    record the outcome now: `rejected` / `too_complex` when the time went into decoding and
    encoding this image, `failed` (raised, so the event is retried) when it went into our own
    reads or writes. An attempt already recording is given the grace period to finish."""
    if deadline.remaining() <= 0:
        raise OutOfTime(f"no time left to start {upload.key}")
    watch = Watch(deadline)
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["outcome"] = render_current(adapters, upload, watch)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            done["error"] = exc

    worker = threading.Thread(target=run, name=f"attempt-{image_id_for(upload.key)[:8]}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline.remaining()))
    if worker.is_alive() and not watch.give_up():  # recording: almost done
        worker.join(deadline.grace)
        watch.give_up(even_recording=True)
    if worker.is_alive():
        watch.give_up(even_recording=True)
    elif not isinstance(done.get("error"), Cancelled):  # finished in time: its own outcome
        if "error" in done:
            raise done["error"]
        outcome: Outcome = done["outcome"]
        return outcome
    return _timed_out(adapters, upload, watch)


def _timed_out(adapters: Adapters, upload: Upload, watch: Watch) -> Outcome:
    attempt = watch.attempt or Attempt(adapters, upload, image_id_for(upload.key), sequencer_order(upload.sequencer))
    limit = f"{watch.deadline.limit:.0f} s"
    if watch.stage == "render":
        rejection = RejectedInput(
            ErrorCode.TOO_COMPLEX, f"decoding and encoding did not finish within the function's time limit ({limit} with a margin)"
        )
        outcome = _reject(attempt, rejection)
        if attempt.writer is not None:
            best_effort(attempt.writer.abandon, "remove the renditions of an abandoned attempt")
        return outcome
    exc = TimeoutError(f"{watch.stage} of {short(upload.key)} did not finish within the function's time limit ({limit})")
    _fail(attempt, exc)
    raise exc


@dataclass
class Attempt:
    """One try at one upload: what every step needs to record, publish and time it."""

    adapters: Adapters
    upload: Upload
    image_id: str
    sequencer: str | None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    source: SourceObject | None = None
    previous: ImageRecord | None = None
    facts: Facts | None = None
    duplicate_of: str | None = None
    watch: Watch | None = None  # with a deadline: the stage reached, and whether to give up
    writer: renditions.RenditionWriter | None = None

    def enter(self, stage: str) -> None:
        """Reached `stage`; raises Cancelled if the deadline passed meanwhile."""
        if self.watch is not None:
            self.watch.enter(stage)

    def check(self) -> None:
        if self.watch is not None:
            self.watch.check()

    def base_record(self, now: str, status: Status) -> ImageRecord:
        """What every record of an attempt says: the source, the profile, the times."""
        source = self.source
        return ImageRecord(
            image_id=self.image_id,
            source_bucket=self.upload.bucket,
            source_key=self.upload.key,
            source_etag=source.etag if source else None,
            source_version=source.version_id if source else None,
            content_type=source.content_type if source else None,
            bytes=source.size if source else None,
            sequencer=self.sequencer,
            profile=self.adapters.profile.name,
            profile_version=self.adapters.profile.version,
            created_at=(self.previous.created_at if self.previous else None) or now,
            updated_at=now,
            uploaded_at=self.upload.event_time,
            uploaded_by=source.metadata.get(UPLOADED_BY) if source else None,
            listing=LISTING,
            status=status.value,
            renditions=(),
        )

    def timed(self, stage: str, since: float) -> None:
        self.timings[f"{stage}_ms"] = ms(since)

    def facts_fields(self) -> dict[str, Any]:
        return likeness.facts_fields(self.facts, self.duplicate_of)

    def ignored(self, reason: str) -> tuple[Outcome, None]:
        return ignored(self.adapters, self.upload, reason, self.image_id), None


def _attempt(adapters: Adapters, upload: Upload, watch: Watch | None = None) -> tuple[Outcome, Upload | None]:
    """(the outcome, the repair to run when this attempt lost a race over the same files)."""
    attempt = Attempt(adapters, upload, image_id_for(upload.key), sequencer_order(upload.sequencer), watch=watch)
    if watch is not None:
        watch.attempt = attempt
    try:
        return _process(attempt)
    except Exception as exc:
        if watch is not None and watch.cancel.is_set():  # the watching thread records the outcome
            raise Cancelled(f"abandoned at the deadline: {exc}") from exc
        _fail(attempt, exc)
        raise


def _process(attempt: Attempt) -> tuple[Outcome, Upload | None]:
    adapters, upload = attempt.adapters, attempt.upload
    attempt.previous = previous = adapters.catalog.get(attempt.image_id)
    if previous and attempt.sequencer and (previous.sequencer or "") > attempt.sequencer:
        return attempt.ignored("a newer upload of this key was already processed")
    attempt.source = source = adapters.store.head(upload.bucket, upload.key)
    if source is None:
        return attempt.ignored("object no longer exists")
    if source.size == 0 and upload.key.endswith("/"):
        return attempt.ignored("folder marker")
    replayed = forms.replay(adapters, upload, source, attempt.image_id)  # before any download
    if replayed is not None:
        return replayed, None
    try:
        result, stored = _read_and_render(attempt, source)
    except RejectedInput as rejection:
        attempt.enter("record")
        return _reject(attempt, rejection), None
    except SourceChanged:
        # Not a failure: S3 sends an event for the overwrite or delete, and that one
        # processes what is there now. Nothing was written yet (the read comes first).
        return attempt.ignored("the object changed while it was read; its own event handles the new state")
    return _store(attempt, source, result, stored)


def _read_and_render(attempt: Attempt, source: SourceObject) -> tuple[render.RenderResult, list[RenditionRecord]]:
    """Read, render, and write each rendition as soon as it is encoded (uploads overlap the
    remaining encodes). If rendering fails, what was already written is removed again."""
    adapters, settings = attempt.adapters, attempt.adapters.settings
    complexity.check_source_size(source.size, settings.max_source_bytes)  # before any download
    mark = time.perf_counter()
    data = adapters.store.get(source)
    attempt.timed("read", mark)
    complexity.check_decode_work(data, settings.max_decode_work, settings.max_source_pixels)  # before any decoder runs
    attempt.enter("render")
    mark = time.perf_counter()
    workers = render.worker_count(settings.max_workers, settings.lambda_memory_mb)
    # A new source version or profile gets a new folder: a URL once served never changes.
    version = rendition_version(source.version_id, source.etag, adapters.profile.version)
    folder = output_folder(settings, attempt.upload.key, version)
    writer = renditions.RenditionWriter(adapters, source, folder, attempt.previous, workers, check=attempt.check)
    attempt.writer = writer
    try:
        result = render.render(
            data, adapters.profile, adapters.limits, source_stem(source.key), workers=workers, on_rendition=writer.submit
        )
    except BaseException:
        writer.abandon()
        raise
    attempt.timed("render", mark)
    _facts(attempt, result)
    if attempt.duplicate_of and settings.duplicates == "reject":
        writer.abandon()
        raise RejectedInput(ErrorCode.DUPLICATE, f"a near-duplicate of image {attempt.duplicate_of} (DUPLICATES=reject)")
    mark = time.perf_counter()
    stored = writer.finish(result.renditions)
    attempt.timed("write", mark)  # only the uploads still running when the last encode ended
    return result, stored


def _facts(attempt: Attempt, result: render.RenderResult) -> None:
    if result.preview is not None:  # see chalicelib.likeness
        mark = time.perf_counter()
        attempt.facts, attempt.duplicate_of = likeness.facts_of(attempt.adapters, attempt.image_id, attempt.previous, result.preview)
        attempt.timed("facts", mark)


Repair = Upload | None  # the re-render a lost race needs (see _yield_to_newer)


def _store(attempt: Attempt, source: SourceObject, result: render.RenderResult, stored: list[RenditionRecord]) -> tuple[Outcome, Repair]:
    adapters, upload = attempt.adapters, attempt.upload
    try:
        attempt.enter("record")
    except Cancelled:
        renditions.delete_unlisted(adapters, [r.key for r in stored], attempt.previous, "clean up")
        raise
    now = adapters.now()
    record = replace(
        attempt.base_record(now, Status.PROCESSED),
        format=result.source.format,
        width=result.source.width,
        height=result.source.height,
        frames=result.source.frames,
        renditions=tuple(stored),
        skipped_presets=tuple(result.skipped) or None,
        notes=tuple(result.notes) or None,
        camera=result.source.camera.as_dict() or None,
        processed_at=now,
        **attempt.facts_fields(),
    )
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
    notice = Notice(
        "image.processed",
        summary,
        f"Processed {short(upload.key)}: {len(stored)} renditions",
        published={"renditions": record.public_view()["renditions"], "renditions_bytes": total_bytes, **attempt.facts_fields()},
        logged={"key": upload.key, "renditions": len(stored), "bytes_written": total_bytes, "duplicate_of": attempt.duplicate_of},
        metrics={"ImagesProcessed": (1, "Count"), "RenditionsWritten": (len(stored), "Count"), "BytesWritten": (total_bytes, "Bytes")},
        started=attempt.started,
        timings=attempt.timings,
        processing_time=True,
    )
    mark = time.perf_counter()

    def recorded() -> None:
        renditions.delete_stale(adapters, attempt.previous, {r.key for r in stored})
        likeness.reindex(adapters, attempt.previous, record)
        attempt.timed("record", mark)

    try:
        done = announce(adapters, notice, record=record, then=recorded, tag=source, now=now)
    except Exception:
        # The record still describes the previous version: files it does not list must go.
        renditions.delete_unlisted(adapters, [r.key for r in stored], attempt.previous, "clean up unrecorded renditions")
        raise
    if not done:
        repair = _yield_to_newer(attempt, stored)
        return ignored(adapters, upload, NEWER_RECORDED, attempt.image_id), repair
    return Outcome(Status.PROCESSED.value, upload.key, attempt.image_id, record=record, renditions=tuple(stored)), None


def _yield_to_newer(attempt: Attempt, written: Sequence[RenditionRecord]) -> Upload | None:
    """A newer event recorded this key while this one rendered, and this attempt's files may
    have landed on top of the newer ones (same keys). Remove what the newer record does not
    list; the newer version is to be rendered again over what it does (the returned repair),
    so the catalog and the bucket agree."""
    upload = attempt.upload
    winner = attempt.adapters.catalog.get(attempt.image_id)
    ours = {r.key for r in written}
    renditions.delete_unlisted(attempt.adapters, sorted(ours), winner, "remove renditions of a superseded event")
    listed = renditions.listed(winner)
    if winner and ours & listed and winner.status == Status.PROCESSED.value and upload.event_name != REPAIR_EVENT:
        return Upload(upload.bucket, upload.key, REPAIR_EVENT, winner.sequencer, upload.event_time)
    return None


def _reject(attempt: Attempt, rejection: RejectedInput) -> Outcome:
    adapters, upload = attempt.adapters, attempt.upload
    now = adapters.now()
    record = replace(
        attempt.base_record(now, Status.REJECTED),
        error_code=rejection.code.value,
        error=rejection.message,
        rejected_at=now,
        **(attempt.facts_fields() if rejection.code == ErrorCode.DUPLICATE else {}),
    )
    details = {
        "image_id": attempt.image_id,
        "source_bucket": upload.bucket,
        "source_key": upload.key,
        "status": Status.REJECTED.value,
        "error_code": rejection.code.value,
        "error": rejection.message,
        "bytes": record.bytes,
    }
    notice = Notice(
        "image.rejected",
        details,
        f"Rejected {short(upload.key)}: {rejection.code.value}",
        logged={"key": upload.key},
        metrics={"ImagesRejected": (1, "Count")},
        started=attempt.started,
        timings=attempt.timings,
        processing_time=True,
    )

    def unserve() -> None:  # an earlier good version of this key must not keep serving renditions
        renditions.delete_stale(adapters, attempt.previous, ())
        likeness.reindex(adapters, attempt.previous, None)

    if not announce(adapters, notice, record=record, then=unserve, tag=attempt.source, now=now):
        return ignored(adapters, upload, NEWER_RECORDED, attempt.image_id)
    return Outcome(Status.REJECTED.value, upload.key, attempt.image_id, reason=rejection.message, record=record)


def _fail(attempt: Attempt, exc: BaseException) -> None:
    """Record, publish and log an unexpected failure; the caller re-raises for a retry."""
    adapters, upload = attempt.adapters, attempt.upload
    now = adapters.now()

    def record_failure() -> None:
        previous = adapters.catalog.get(attempt.image_id)
        if previous and previous.status == Status.PROCESSED.value:
            return  # keep serving the last good version; the retry will replace it
        # A generic message: the exception text (bucket names, ARNs, account ids) is logged only.
        failed = attempt.base_record(now, Status.FAILED)
        adapters.catalog.put(replace(failed, error_code=INTERNAL_ERROR, error=FAILED_MESSAGE))

    best_effort(record_failure, "record the failure")
    announce_failure(
        adapters,
        upload,
        attempt.image_id,
        exc,
        subject=f"Failed {short(upload.key)}",
        doing="processing",
        details={"bytes": attempt.source.size if attempt.source else None},
        started=attempt.started,
        timings=attempt.timings,
    )
