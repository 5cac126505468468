"""Raw S3/SQS/SNS events -> typed uploads: malformed records are reported and counted, never raised."""

from __future__ import annotations

import json

import pytest

from chalicelib import events, processing, removal
from chalicelib.models import Upload
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline, upload


def test_each_malformed_record_counts_once_in_events_malformed(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad records are dropped, not silent: each gives one line with EventsMalformed = 1 (EMF),
    the metric the malformed-events alarm watches; good records next to them count nothing."""
    good = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "up"}, "object": {"key": "uploads/a+b.jpg"}}}
    capsys.readouterr()
    assert [u.key for u in events.uploads({"Records": ["garbage", good, {"s3": {"object": {"key": 5}}}]})] == ["uploads/a b.jpg"]
    assert events.uploads({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []
    assert events.sqs_bodies({"Records": [{"messageId": "1"}, {"body": "{}"}]}) == ["{}"]
    assert events.sns_messages({"Records": [{"Sns": {"Message": "hi"}}, {"Sns": {}}]}) == [("hi", None)]
    p = make_pipeline()
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("someone-else", "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    for handle in (processing.handle_upload, removal.remove_source):
        assert handle(p, Upload("someone-else", "uploads/cat.jpg", sequencer="FF")).status == "ignored"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 7 and all(line["error_code"] == "malformed_event" for line in lines)
    assert [line.get("EventsMalformed") for line in lines] == [1] * 7
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "EventsMalformed", "Unit": "Count"}] for line in lines)
    assert [line.get("bucket") for line in lines[-2:]] == ["someone-else"] * 2
    # an ordinary ignored upload (outside the prefix) is not malformed: no count, no alarm
    upload(p, "elsewhere/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert line["event"] == "image.ignored" and "EventsMalformed" not in line and "error_code" not in line
