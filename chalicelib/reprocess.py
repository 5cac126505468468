"""The `reprocess` SQS handler's work: re-render one source per message, after the presets changed.

A message is a `Job` (bucket, key, profile version). A source whose catalog record already
carries the active profile's version is skipped, so a redelivered message is a no-op.
The messages are sent by the command-line tool `python -m tools.reprocess` (`make reprocess`),
which lists the uploads in resumable batches; it is not part of the Lambda package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from chalicelib import keys, observe
from chalicelib.adapters import Adapters
from chalicelib.deadline import Deadline
from chalicelib.events import MALFORMED_EVENT, MALFORMED_METRICS
from chalicelib.models import Status, Upload
from chalicelib.outcomes import Outcome, ignored
from chalicelib.processing import handle_upload
from chalicelib.records import ImageRecord

REPROCESS_EVENT = "Pipeline:Reprocess"
_UP_TO_DATE = (Status.PROCESSED.value, Status.REJECTED.value)
_FIRST_SEQUENCER = "0"  # sorts before every real S3 sequencer: a real event always wins


@dataclass(frozen=True)
class Job:
    """One source to re-render: the body of one SQS message."""

    bucket: str
    key: str
    profile_version: str

    def body(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_body(cls, body: str) -> Job:
        try:
            data = json.loads(body)
        except RecursionError:  # "[[[[..." : not a ValueError, but as hopeless
            raise ValueError("a reprocess message nested too deeply to be JSON we sent") from None
        if not isinstance(data, dict) or not all(isinstance(data.get(f), str) and data.get(f) for f in ("bucket", "key")):
            raise ValueError("a reprocess message needs string fields bucket and key")
        return cls(data["bucket"], data["key"], str(data.get("profile_version", "")))


def up_to_date(record: ImageRecord | None, profile_version: str) -> bool:
    """Rendered (or rejected) with the active presets: nothing to redo."""
    return bool(record and record.status in _UP_TO_DATE and record.profile_version == profile_version)


def reprocess_one(pipeline: Adapters, job: Job, deadline: Deadline | None = None) -> Outcome:
    """Re-render one source unless it is already up to date (a redelivered message is a no-op)
    or was deleted (its tombstone is respected).

    The upload runs under the record's own sequencer, so an S3 event for a newer upload,
    which carries a larger one, always wins over a reprocess of the older content.
    """
    image_id = keys.image_id_for(job.key)
    record = pipeline.catalog.get(image_id)
    if record is not None and record.status == Status.DELETED.value:
        # Deleted (DELETE /images/{id}?keep_source=true, or a removal): it never comes back.
        # A new upload of the key is a new image, brought in by its own S3 event.
        return ignored(pipeline, Upload(job.bucket, job.key, REPROCESS_EVENT), "the image was deleted", image_id)
    if up_to_date(record, pipeline.profile.version):
        upload = Upload(job.bucket, job.key, REPROCESS_EVENT)
        return ignored(pipeline, upload, f"already rendered with profile version {pipeline.profile.version}", image_id)
    sequencer = (record.sequencer if record else None) or _FIRST_SEQUENCER
    return handle_upload(pipeline, Upload(job.bucket, job.key, REPROCESS_EVENT, sequencer), deadline)


def handle_messages(pipeline: Adapters, bodies: Iterable[str], deadline: Deadline | None = None) -> list[Outcome]:
    """The SQS handler's work: every message is tried; if any failed, the first error is
    raised afterwards so SQS redelivers the batch (the done ones are then skipped as up to
    date) and, after the queue's maxReceiveCount, parks it in the dead-letter queue.
    A message that is not a job is logged and dropped: retrying cannot fix it."""
    outcomes: list[Outcome] = []
    errors: list[Exception] = []
    for body in bodies:
        try:
            job = Job.from_body(body)
        except ValueError as exc:
            fields = {"event": "reprocess.invalid", "status": "ignored", "error": str(exc), "body": body[:500]}
            observe.emit({**fields, "error_code": MALFORMED_EVENT}, MALFORMED_METRICS)
            continue
        try:
            outcomes.append(reprocess_one(pipeline, job, deadline))  # OutOfTime: redelivered
        except Exception as exc:  # noqa: BLE001 - the rest of the batch still runs; raised below
            errors.append(exc)
    if errors:
        raise errors[0]
    return outcomes
