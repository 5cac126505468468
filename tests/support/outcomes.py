"""The outcome log lines the service really writes, for the tests of their format
(tests/unit/test_observe.py) and of the Terraform metric filters that count them
(tests/infra/test_log_metrics.py)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from chalicelib import events, processing, removal, reprocess
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline


def every_outcome() -> list[dict[str, Any]]:
    """The stdout lines of a processed, a rejected, a failed, an ignored and a deleted image,
    with SNS down throughout (so `publish.failed` lines too), then of four malformed events
    (an S3 record without a key, an SNS record without a message, an upload in another
    bucket, a reprocess message that is not JSON), each parsed from JSON."""

    class FlakyGet(MemoryObjectStore):
        def get(self, source: Any) -> bytes:
            if source.key.endswith("flaky.jpg"):
                raise ConnectionError("read timed out")
            return super().get(source)

    class DeadNotifier(MemoryNotifier):
        def publish(self, *a: Any, **kw: Any) -> str:
            raise ConnectionError("SNS is down")

    p = make_pipeline(store=FlakyGet(), notifier=DeadNotifier())
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    for key, data in (
        ("uploads/ok.jpg", fixture_bytes("orient_landscape_1.jpg")),
        ("uploads/bad.jpg", b"nope"),
        ("uploads/flaky.jpg", b"x"),
    ):
        store.add("up", key, data)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        processing.handle_upload(p, Upload("up", "uploads/ok.jpg", sequencer="01"))
        processing.handle_upload(p, Upload("up", "uploads/bad.jpg", sequencer="01"))
        with pytest.raises(ConnectionError):
            processing.handle_upload(p, Upload("up", "uploads/flaky.jpg", sequencer="01"))
        processing.handle_upload(p, Upload("up", "elsewhere/x.jpg", sequencer="01"))
        store.remove("up", "uploads/ok.jpg")
        removal.remove_source(p, Upload("up", "uploads/ok.jpg", "ObjectRemoved:Delete", sequencer="02"))
        assert events.uploads({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {}}}]}) == []
        assert events.sns_messages({"Records": [{"Sns": {"Subject": "no message"}}]}) == []
        processing.handle_upload(p, Upload("someone-else", "uploads/ok.jpg", sequencer="03"))
        assert reprocess.handle_messages(p, ["not json"]) == []
    text = out.getvalue().splitlines()
    assert all(line.startswith("{") and line.endswith("}") for line in text), "every stdout line is one JSON object"
    return [json.loads(line) for line in text]
