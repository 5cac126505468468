"""How every path ends: one `announce` records, tags, publishes and logs an outcome
(processed, rejected, failed, deleted, ignored), so each says the same things the same way."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib import observe
from chalicelib.adapters import Adapters
from chalicelib.events import MALFORMED_EVENT, MALFORMED_METRICS
from chalicelib.models import SourceObject, Upload
from chalicelib.records import FAILED_MESSAGE, ImageRecord, RenditionRecord

log = logging.getLogger("image_pipeline")

IGNORED = "ignored"
INTERNAL_ERROR = "internal_error"
# FAILED_MESSAGE (records.py) is what a `failed` record, its public view and the `image.failed`
# event say. The exception text goes to the log only: an AWS error message carries bucket
# names, role ARNs and account ids.


@dataclass(frozen=True)
class Outcome:
    status: str  # a Status value, or "ignored"
    source_key: str
    image_id: str | None = None
    reason: str | None = None
    record: ImageRecord | None = None
    renditions: tuple[RenditionRecord, ...] = field(default=())


@dataclass(frozen=True)
class Notice:
    """What an outcome tells: `fields` go into both the SNS event and the log line, `published`
    and `logged` only into one of them. No `subject`: nothing is published."""

    event: str  # "image.processed", ...
    fields: Mapping[str, Any]
    subject: str | None = None
    published: Mapping[str, Any] = field(default_factory=dict)
    logged: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    # Timed outcomes: the log line gets duration_ms (since `started`) and the stage timings,
    # as they stand when it is written; `processing_time` adds the ProcessingTime metric.
    started: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    processing_time: bool = False

    def line(self) -> tuple[dict[str, Any], dict[str, tuple[float, str]]]:
        """The outcome's log line and metrics."""
        line = {"event": self.event, **self.fields, **self.logged}
        metrics = dict(self.metrics)
        if self.started is not None:
            line["duration_ms"] = duration = ms(self.started)
            line.update(self.timings)
            if self.processing_time:
                metrics["ProcessingTime"] = (duration, "Milliseconds")
        return line, metrics


def announce(
    adapters: Adapters,
    notice: Notice,
    *,
    record: ImageRecord | None = None,
    then: Callable[[], None] | None = None,
    tag: SourceObject | None = None,
    now: str | None = None,
) -> bool:
    """Record (conditionally on the sequencer), run `then`, tag the source, publish, log.
    False, with nothing else done, when a newer event already recorded this image. `now`:
    the time the record carries, so the tag and the event say the same (default: the clock)."""
    if record is not None and not adapters.catalog.put(record):
        return False
    if then is not None:
        then()
    now = now or (adapters.now() if tag is not None or notice.subject is not None else "")
    if tag is not None:
        tags = {"pipeline-status": str(notice.fields["status"]), "processed-at": now.replace("+00:00", "Z")}
        best_effort(lambda: adapters.store.tag(tag.bucket, tag.key, tags), f"tag {tag.key}")
    if notice.subject is not None:
        _publish(adapters, notice.event, notice.subject, {**notice.fields, **notice.published, "occurred_at": now})
    observe.emit(*notice.line())
    return True


def announce_failure(
    adapters: Adapters,
    upload: Upload,
    image_id: str,
    exc: BaseException,
    *,
    subject: str,
    doing: str,
    details: Mapping[str, Any],
    started: float,
    timings: Mapping[str, float] | None = None,
) -> None:
    """Publish `image.failed` (the exception's type, a generic message), write its outcome line
    (ImagesFailed, with the exception text) and log the traceback; the caller re-raises for
    Lambda's retry."""
    fields = {
        "image_id": image_id,
        "source_bucket": upload.bucket,
        "source_key": upload.key,
        "status": "failed",
        "error_code": INTERNAL_ERROR,
        "error_type": error_type(exc),
        "error": FAILED_MESSAGE,
        **details,
    }
    notice = Notice(
        "image.failed",
        fields,
        subject,
        logged={"key": upload.key, "error": error_text(exc)},
        metrics={"ImagesFailed": (1, "Count")},
        started=started,
        timings=timings or {},
    )
    announce(adapters, notice)
    log.error("%s %s failed; the event will be retried", doing, upload.key, exc_info=exc)


def ignored(
    adapters: Adapters, upload: Upload, reason: str, image_id: str | None = None, *, malformed: Mapping[str, str] | None = None
) -> Outcome:
    """Nothing to do for this event. `malformed` (extra fields) marks one no retry can fix:
    it is counted in EventsMalformed as well. Only logged: nothing changed, nothing to publish."""
    fields = {"status": IGNORED, "image_id": image_id, "key": upload.key, "reason": reason}
    if malformed is None:
        announce(adapters, Notice("image.ignored", fields))
    else:
        announce(adapters, Notice("image.ignored", fields, logged={"error_code": MALFORMED_EVENT, **malformed}, metrics=MALFORMED_METRICS))
    return Outcome(IGNORED, upload.key, image_id, reason=reason)


def outside_our_uploads(adapters: Adapters, upload: Upload) -> Outcome | None:
    """The ignored outcome of an event for another bucket or outside UPLOAD_PREFIX, else None.

    image_id and output keys come from the key alone: another bucket's `uploads/a.jpg` would
    overwrite ours. Only a misconfigured trigger (or a hand-made event) sends one, so it is
    reported and counted like a malformed event, naming the bucket."""
    settings = adapters.settings
    if upload.bucket != settings.upload_bucket:
        return ignored(adapters, upload, f"not in UPLOAD_BUCKET {settings.upload_bucket!r}", malformed={"bucket": upload.bucket})
    if not upload.key.startswith(settings.upload_prefix):
        return ignored(adapters, upload, f"outside UPLOAD_PREFIX {settings.upload_prefix!r}")
    return None


def _publish(adapters: Adapters, event_type: str, subject: str, body: dict[str, Any]) -> None:
    """A failed publish never loses a processed image: it is logged and counted."""
    payload = json.dumps({"type": event_type, **body}, default=str, ensure_ascii=False)
    attributes = {"event_type": event_type, "status": str(body.get("status", ""))}
    try:
        adapters.notifier.publish(adapters.settings.events_topic, subject=subject, message=payload, attributes=attributes)
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


def best_effort(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except Exception:
        log.warning("could not %s", what, exc_info=True)


def error_text(exc: BaseException) -> str:
    """The full text, for the logs only."""
    return f"{type(exc).__name__}: {exc}"[:1000]


def error_type(exc: BaseException) -> str:
    """What may be shown of an exception: its type, and an AWS error's code (`ClientError(NoSuchBucket)`),
    never its message."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    name = type(exc).__name__
    return f"{name}({code})" if isinstance(code, str) and code.isascii() and code.replace(".", "").isalnum() else name


def ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def short(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name if len(name) <= 60 else name[:57] + "..."
