"""Chalice's S3 and SNS event objects, made to accept any event.

Chalice builds `S3Event` / `SNSEvent` from `Records[0]` before the handler is called, so an
event without records, a record without a key, or an SNS record without `Subject` raised
KeyError/IndexError outside our code: a bare traceback, no outcome line, and Lambda retrying
a hopeless event. The handlers read `event.to_dict()` through `service.uploads_from_event` /
`service.sns_messages`, which report such records; these classes only keep Chalice's
attributes where the event has them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from chalice.app import EventSourceHandler, S3Event, SNSEvent

_MALFORMED = (KeyError, IndexError, TypeError, AttributeError)


class LenientS3Event(S3Event):
    def _extract_attributes(self, event_dict: dict[str, Any]) -> None:
        self.bucket, self.key = "", ""
        with contextlib.suppress(*_MALFORMED):  # reported by service.uploads_from_event
            super()._extract_attributes(event_dict)


class LenientSNSEvent(SNSEvent):
    def _extract_attributes(self, event_dict: dict[str, Any]) -> None:
        self.message, self.subject, self.message_attributes = "", "", {}
        with contextlib.suppress(*_MALFORMED):  # reported by service.sns_messages
            super()._extract_attributes(event_dict)


_LENIENT = {S3Event: LenientS3Event, SNSEvent: LenientSNSEvent}


def parse_in_handler(*handlers: object) -> None:
    """Give registered S3/SNS handlers the lenient event classes above."""
    for handler in handlers:
        assert isinstance(handler, EventSourceHandler), handler
        handler.event_class = _LENIENT[handler.event_class]
