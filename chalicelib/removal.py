"""The removal use case: an ObjectRemoved event -> the source's renditions removed and its
record kept as a `deleted` tombstone."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace

from chalicelib import likeness
from chalicelib.adapters import Adapters
from chalicelib.catalog import LISTING, sequencer_order
from chalicelib.keys import image_id_for
from chalicelib.models import SourceObject, Status, Upload
from chalicelib.outcomes import Notice, Outcome, announce, announce_failure, ignored, outside_our_uploads, short
from chalicelib.processing import NEWER_RECORDED, REPAIR_EVENT, render_current
from chalicelib.records import ImageRecord


def remove_source(adapters: Adapters, removal: Upload) -> Outcome:
    """An ObjectRemoved event: remove the source's renditions and mark its record `deleted`.

    Ordered like uploads, by the S3 `sequencer`: a removal older than the recorded upload is
    ignored. The record is kept as a tombstone (status `deleted`, no renditions) rather than
    removed, so a late ObjectCreated event for the deleted upload cannot bring it back. When
    the key still resolves to an object (a versioned bucket where one version was removed
    and an older one became current, or a re-upload whose event is still on its way) that
    object is rendered instead: the catalog always describes what is in the bucket.
    """
    outside = outside_our_uploads(adapters, removal)
    if outside is not None:
        return outside
    started = time.perf_counter()
    image_id = image_id_for(removal.key)
    sequencer = sequencer_order(removal.sequencer)
    with _removal_failures(adapters, removal, image_id, started):
        previous = adapters.catalog.get(image_id)
        if previous and sequencer and (previous.sequencer or "") > sequencer:
            return ignored(adapters, removal, "a newer upload of this key was already processed", image_id)
        current = adapters.store.head(removal.bucket, removal.key)
    if current is not None:
        if previous and previous.status != Status.DELETED.value and _describes(previous, current):
            return ignored(adapters, removal, "another version was removed; the recorded one is still current", image_id)
        return render_current(adapters, removal)
    if previous is None:
        return ignored(adapters, removal, "nothing was recorded for this key", image_id)
    if previous.status == Status.DELETED.value and not previous.removing:
        # DELETE /images/{id} deleted the source after recording the tombstone: nothing is left.
        return ignored(adapters, removal, "already deleted", image_id)
    return _tombstone(adapters, removal, previous, image_id=image_id, sequencer=sequencer, started=started)


def _tombstone(
    adapters: Adapters, removal: Upload, previous: ImageRecord, *, image_id: str, sequencer: str | None, started: float
) -> Outcome:
    # Rendition keys are versioned: an upload racing this removal writes its own keys and
    # removes them itself when its record loses to this tombstone (processing._yield_to_newer).
    doomed = previous.keys_to_remove
    now = adapters.now()
    tombstone = ImageRecord(
        image_id=image_id,
        created_at=previous.created_at,
        source_bucket=removal.bucket,
        source_key=removal.key,
        status=Status.DELETED.value,
        renditions=(),
        removing=tuple(doomed),  # kept until the files are gone, so a retry knows them
        sequencer=sequencer or previous.sequencer,
        profile=adapters.profile.name,
        profile_version=adapters.profile.version,
        updated_at=now,
        deleted_at=now,
        listing=LISTING,
    )
    details = {"image_id": image_id, "source_bucket": removal.bucket, "source_key": removal.key, "status": Status.DELETED.value}
    notice = Notice(
        "image.deleted",
        details,
        f"Deleted {short(removal.key)}",
        logged={"key": removal.key, "renditions_removed": len(doomed)},
        metrics={"ImagesDeleted": (1, "Count")},
        started=started,
    )
    latest: ImageRecord | None = None

    def remove_files() -> None:
        nonlocal latest
        adapters.store.delete(adapters.settings.processed_bucket, doomed)  # raises: the event is retried
        likeness.reindex(adapters, previous, None)
        cleared = adapters.catalog.put(replace(tombstone, removing=None))
        # Not cleared: re-uploaded and processed between our record and our delete; its files may be gone.
        latest = None if cleared else adapters.catalog.get(image_id)

    # Record first, then delete: readers never see renditions listed that are already gone.
    with _removal_failures(adapters, removal, image_id, started):
        if not announce(adapters, notice, record=tombstone, then=remove_files, now=now):
            return ignored(adapters, removal, NEWER_RECORDED, image_id)
    if latest is not None and latest.status == Status.PROCESSED.value:
        render_current(adapters, Upload(removal.bucket, removal.key, REPAIR_EVENT, latest.sequencer, removal.event_time))
    return Outcome(Status.DELETED.value, removal.key, image_id, record=tombstone)


@contextlib.contextmanager
def _removal_failures(adapters: Adapters, removal: Upload, image_id: str, started: float) -> Iterator[None]:
    """A removal that fails is logged, counted and announced like a failed upload, then
    re-raised for Lambda's retry: renditions of a deleted source must not linger unnoticed."""
    try:
        yield
    except Exception as exc:
        subject = f"Failed to remove renditions of {short(removal.key)}"
        announce_failure(
            adapters,
            removal,
            image_id,
            exc,
            subject=subject,
            doing="removing the renditions of",
            details={"operation": "remove"},
            started=started,
        )
        raise


def _describes(record: ImageRecord, source: SourceObject) -> bool:
    """Whether `record` was made from exactly this object (version id, else ETag)."""
    if source.version_id and source.version_id != "null" and record.source_version:
        return record.source_version == source.version_id
    return record.source_etag == source.etag
