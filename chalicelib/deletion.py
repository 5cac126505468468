"""The `DELETE /images/{id}` use case: the image becomes a tombstone, its renditions and (by
default) its source are removed, and the CDN is told to forget its paths.

A tombstone, not a removed record: reprocessing skips it (reprocess.reprocess_one) and the
late S3 events of the deleted upload lose to it (its sequencer sorts after the upload's), so a
deleted image never comes back. A new upload to the same key is a new image: its S3 event
carries a larger sequencer and wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from chalicelib.catalog import LISTING, Catalog
from chalicelib.cdn import Cdn, paths_for
from chalicelib.models import Status
from chalicelib.records import ImageRecord
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore

log = logging.getLogger("image_pipeline")

# Appended to the deleted upload's sequencer: sorts after it (a longer string with the same
# prefix) and before any later upload's (which differs, and is larger, within the 32 digits).
DELETED_SUFFIX = "-deleted"
_NO_SEQUENCER = "0" * 32


class Conflict(Exception):
    """The record changed while it was being deleted (reprocessed, or a new upload recorded)."""


@dataclass(frozen=True)
class Deleted:
    renditions: int
    source: bool
    cdn_invalidation: str | None  # the invalidation id; None when no CDN is configured or it failed

    def view(self) -> dict[str, bool | int]:
        """The `deleted` part of the API's answer (docs/api.md)."""
        return {"record": True, "renditions": self.renditions, "source": self.source, "cdn_invalidated": self.cdn_invalidation is not None}


@dataclass(frozen=True)
class Deleter:
    settings: Settings
    catalog: Catalog
    store: ObjectStore
    cdn: Cdn | None
    now: Callable[[], str]


def tombstone_of(record: ImageRecord, keys: list[str], now: str) -> ImageRecord:
    sequencer = record.sequencer or _NO_SEQUENCER
    return ImageRecord(
        image_id=record.image_id,
        source_bucket=record.source_bucket,
        source_key=record.source_key,
        created_at=record.created_at,
        status=Status.DELETED.value,
        renditions=(),
        removing=tuple(keys) or None,  # kept until the files are gone, so a retried DELETE knows them
        sequencer=sequencer if sequencer.endswith(DELETED_SUFFIX) else sequencer + DELETED_SUFFIX,
        profile=record.profile,
        profile_version=record.profile_version,
        updated_at=now,
        deleted_at=record.deleted_at or now,
        listing=LISTING,
    )


def delete_image(deleter: Deleter, record: ImageRecord, *, keep_source: bool) -> Deleted:
    """Record the tombstone first (readers never see renditions listed that are gone), then
    remove the files, then clear the tombstone's `removing` list. A failure on the way raises;
    the tombstone still lists what is left, and a repeated DELETE finishes the job."""
    settings = deleter.settings
    keys = record.keys_to_remove
    tombstone = tombstone_of(record, keys, deleter.now())
    if not deleter.catalog.replace_version(tombstone, record.updated_at or ""):
        raise Conflict(record.image_id)
    if keys:
        deleter.store.delete(settings.processed_bucket, keys)
    source_key = record.source_key or ""
    source_bucket = record.source_bucket or settings.upload_bucket
    # Only our own uploads: a record naming another bucket or prefix is not ours to delete.
    source = not keep_source and source_bucket == settings.upload_bucket and source_key.startswith(settings.upload_prefix)
    if source:
        deleter.store.delete(source_bucket, [source_key])
    if tombstone.removing:
        # False when the source's ObjectRemoved event (or a new upload) recorded meanwhile: fine.
        deleter.catalog.replace_version(replace(tombstone, removing=None), tombstone.updated_at or "")
    return Deleted(len(keys), source, _invalidate(deleter.cdn, keys))


def _invalidate(cdn: Cdn | None, keys: list[str]) -> str | None:
    """Best effort: the image is deleted either way; a failed invalidation is logged (the
    edge copies then expire on their own) and the reply says none was made."""
    if cdn is None or not keys:
        return None
    try:
        return cdn.invalidate(paths_for(keys))
    except Exception:
        log.warning("could not invalidate %d CDN paths", len(keys), exc_info=True)
        return None
