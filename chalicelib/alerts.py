"""Messages for people: any events-topic message -> a readable e-mail on ALERTS_TOPIC_ARN."""

from __future__ import annotations

import json

from chalicelib import observe
from chalicelib.adapters import Adapters
from chalicelib.keys import truncate_utf8
from chalicelib.outcomes import short as _short


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
            f"Error: {body.get('error_type') or '?'}: {body.get('error')} (the details are in the function's log)\n"
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


def notify_people(adapters: Adapters, message: str, subject: str | None = None) -> str | None:
    """Forward an events-topic message to ALERTS_TOPIC_ARN as readable text.

    Always for rejections and failures, for successes only with NOTIFY_ON_SUCCESS=true;
    anything unrecognised is forwarded as pretty JSON or plain text. Returns the message id.
    """
    settings = adapters.settings
    title, text, event_type = describe_event(message, subject)
    if event_type in ("image.processed", "image.deleted") and not settings.notify_on_success:
        return None
    if not settings.alerts_topic_arn:
        observe.emit({"event": "alert.skipped", "reason": "ALERTS_TOPIC_ARN is not set", "subject": title}, {})
        return None
    return adapters.notifier.publish(
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
