"""Raw S3 / SQS / SNS event dicts -> typed uploads, bodies and messages.

Tolerant by design: a record that is not what its trigger sends (no key, wrong types, an
`s3:TestEvent`, no records at all) cannot be processed or retried into shape, so it is
reported as `image.ignored` with the reason and counted, never raised. app.py hands these
functions the event exactly as Lambda delivered it (Chalice's event classes parse
`Records[0]` first and raise on such events, outside our code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from chalicelib import observe
from chalicelib.models import Upload

# An event no retry can make processable (not an S3/SNS/SQS record, another bucket's object, a
# reprocess message we did not write). Dropped, but never silently: every such line carries
# this error_code and counts 1 in EventsMalformed, which infra/monitoring.tf alarms on.
MALFORMED_EVENT = "malformed_event"
MALFORMED_METRICS: dict[str, tuple[float, str]] = {"EventsMalformed": (1, "Count")}


def uploads(event: object) -> list[Upload]:
    """S3 notification records -> Uploads (ObjectCreated and ObjectRemoved alike).

    Keys arrive URL-encoded (`+` for space) and are decoded exactly once, here, the way
    chalice's S3Event.key does for the first record.
    """
    what = event.get("Event") if isinstance(event, Mapping) and event.get("Event") else "an event without S3 records"
    found = []
    for index, record in enumerate(_records(event, f"{what}: nothing to process")):
        upload = _upload(record)
        if upload is None:
            report_malformed(f"record {index} has no s3.bucket.name and s3.object.key strings", record)
        else:
            found.append(upload)
    return found


def _upload(record: object) -> Upload | None:
    s3 = record.get("s3") if isinstance(record, Mapping) else None
    obj = s3.get("object") if isinstance(s3, Mapping) else None
    bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
    key = obj.get("key") if isinstance(obj, Mapping) else None
    name = bucket.get("name") if isinstance(bucket, Mapping) else None
    if not isinstance(key, str) or not key or not isinstance(name, str) or not name or not isinstance(obj, Mapping):
        return None
    assert isinstance(record, Mapping)  # s3 came out of it
    sequencer, event_name, event_time = obj.get("sequencer"), record.get("eventName"), record.get("eventTime")
    return Upload(
        bucket=name,
        key=unquote_plus(key),
        event_name=event_name if isinstance(event_name, str) else "ObjectCreated:Put",
        sequencer=sequencer if isinstance(sequencer, str) else None,
        event_time=event_time if isinstance(event_time, str) else None,
    )


def sqs_bodies(event: object) -> list[str]:
    """The body of each SQS record; records without a string body are reported."""
    bodies = []
    for index, record in enumerate(_records(event, "an event without SQS records: nothing to do", empty_ok=True)):
        body = record.get("body") if isinstance(record, Mapping) else None
        if isinstance(body, str):
            bodies.append(body)
        else:
            report_malformed(f"record {index} has no body string", record)
    return bodies


def sns_messages(event: object) -> list[tuple[str, str | None]]:
    """(message, subject) of each SNS record; records that are not SNS records are reported."""
    messages = []
    for index, record in enumerate(_records(event, "an event without SNS records: nothing to forward")):
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        message = sns.get("Message") if isinstance(sns, Mapping) else None
        if not isinstance(message, str):
            report_malformed(f"record {index} has no Sns.Message string", record)
            continue
        subject = sns.get("Subject") if isinstance(sns, Mapping) else None
        messages.append((message, subject if isinstance(subject, str) else None))
    return messages


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
