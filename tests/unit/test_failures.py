"""A failure tells the world its type and a generic message; the raw text (bucket names, role
ARNs, account ids) goes to the logs only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib import alerts
from chalicelib.notify import MemoryNotifier
from chalicelib.outcomes import FAILED_MESSAGE, error_type
from chalicelib.storage import MemoryObjectStore
from tests.conftest import fixture_bytes
from tests.support.wiring import make_pipeline, stored_record, upload

SECRET = "arn:aws:sts::123456789012:assumed-role/image-pipeline-prod/image-pipeline-prod-process_upload"
DENIED = ClientError(
    {"Error": {"Code": "AccessDenied", "Message": f"User: {SECRET} is not authorized to perform: s3:PutObject on my-bucket-x1"}},
    "PutObject",
)


class DeniedStore(MemoryObjectStore):
    def put(self, bucket: str, key: str, data: bytes, **kw: Any) -> None:
        raise DENIED


def test_a_failed_record_event_and_alert_carry_no_raw_exception_text(capsys: pytest.CaptureFixture[str]) -> None:
    p = make_pipeline(store=DeniedStore())
    with pytest.raises(ClientError):
        upload(p, "uploads/cat.jpg", fixture_bytes("orient_landscape_1.jpg"))
    record = stored_record(p, "uploads/cat.jpg")
    assert record is not None and record["status"] == "failed"
    assert (record["error_code"], record["error"]) == ("internal_error", FAILED_MESSAGE)
    assert isinstance(p.notifier, MemoryNotifier)
    [message] = p.notifier.messages
    event = message.json()
    assert event["error_type"] == "ClientError(AccessDenied)" and event["error"] == FAILED_MESSAGE
    _, text, _ = alerts.describe_event(message.message)
    for shown in (json.dumps(record), message.message, message.subject, text):
        assert "123456789012" not in shown and "arn:" not in shown and "my-bucket-x1" not in shown
    assert "ClientError(AccessDenied)" in text
    # The operator still gets everything, in the log.
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [line] = [x for x in logged if x["event"] == "image.failed"]
    assert SECRET in line["error"]


def test_error_type_shows_the_aws_code_never_the_message() -> None:
    assert error_type(DENIED) == "ClientError(AccessDenied)"
    assert error_type(ConnectionError("host 10.0.0.1 unreachable")) == "ConnectionError"
    odd = ClientError({"Error": {"Code": "x y: arn:aws:iam::1:role/r", "Message": "m"}}, "Op")
    assert error_type(odd) == "ClientError"
