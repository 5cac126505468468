"""Single-use upload forms. A presigned POST can be replayed until it expires, and each replay
is a new object version, a new event and a full processing run. So each form carries a nonce
(`x-amz-meta-form-nonce`, pinned by the form's policy) that the API records when it issues the
form; processing claims it on HEAD, before downloading anything: the first object version
with that nonce is processed, any other is ignored (`image.ignored`, metric FormReplays).

Uploads that did not come through a form (a trusted producer's PutObject, the local inbox)
carry no nonce and are processed as before; so are reprocess and repair runs (they re-render
what is there, they are not uploads).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from chalicelib.adapters import Adapters
from chalicelib.catalog import Catalog
from chalicelib.identity import UPLOADED_BY, Caller
from chalicelib.models import SourceObject, Upload
from chalicelib.outcomes import IGNORED, Notice, Outcome, announce

FORM_NONCE = "form-nonce"  # S3 user metadata (x-amz-meta-form-nonce)
# Kept well past the form's expiry: Lambda retries an event for up to 6 hours, and a retry of
# the first upload must still find its own claim. DynamoDB's TTL (attribute `expires_at`)
# removes the item afterwards; an unknown nonce is processed (it can no longer be replayed:
# S3 refuses an expired form).
KEEP_AFTER_EXPIRY_SECONDS = 7 * 24 * 3600
REPLAYED = "replayed upload form: this form's nonce was already used by another object version"
REPLAY_METRICS = {"FormReplays": (1.0, "Count")}


def metadata(catalog: Catalog, now: datetime, expires_in: int, caller: Caller | None) -> dict[str, str]:
    """A form's x-amz-meta-* fields, pinned by its policy: a recorded nonce, and who asked for
    it (WRITE_AUTH=cognito), so processing records `uploaded_by` and DELETE can tell the owner."""
    nonce = issue(catalog, now, expires_in)
    return {**nonce, UPLOADED_BY: caller.sub} if caller is not None else nonce


def issue(catalog: Catalog, now: datetime, expires_in: int) -> dict[str, str]:
    """A new nonce, recorded; the form metadata that carries it."""
    nonce = secrets.token_hex(16)
    catalog.issue_nonce(nonce, int(now.timestamp()) + expires_in + KEEP_AFTER_EXPIRY_SECONDS)
    return {FORM_NONCE: nonce}


def replay(adapters: Adapters, upload: Upload, source: SourceObject, image_id: str) -> Outcome | None:
    """The ignored outcome when `source` is a replay of a form already used, else None."""
    nonce = source.metadata.get(FORM_NONCE)
    if not nonce or not upload.event_name.startswith("ObjectCreated"):
        return None
    if adapters.catalog.claim_nonce(nonce, claim_of(upload, source)) is not False:
        return None
    fields = {"status": IGNORED, "image_id": image_id, "key": upload.key, "reason": REPLAYED}
    announce(adapters, Notice("image.ignored", fields, logged={"error_code": "form_replayed"}, metrics=REPLAY_METRICS))
    return Outcome(IGNORED, upload.key, image_id, reason=REPLAYED)


def claim_of(upload: Upload, source: SourceObject) -> str:
    """What identifies one object write: its version in a versioned bucket, else the event's
    sequencer (a redelivered event has the same one, a replay a new one), else the ETag."""
    if source.version_id and source.version_id != "null":
        return f"v:{source.version_id}"
    return f"s:{upload.sequencer}" if upload.sequencer else f"e:{source.etag}"
