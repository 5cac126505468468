"""Messages for people: the events topic -> readable alerts, cut to what SNS accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import alerts
from chalicelib.notify import MemoryNotifier
from chalicelib.settings import Settings
from tests.support.wiring import make_pipeline


@pytest.mark.parametrize(
    ("body", "expect_sent", "needle"),
    [
        (
            {"type": "image.rejected", "source_key": "uploads/x.jpg", "error_code": "not_an_image", "error": "nope", "bytes": 12},
            True,
            "nope",
        ),
        ({"type": "image.failed", "source_key": "uploads/x.jpg", "error": "boom"}, True, "boom"),
        ({"type": "image.failed", "operation": "remove", "source_key": "uploads/x.jpg", "error": "boom"}, True, "Removing the renditions"),
        ({"type": "image.processed", "source_key": "uploads/x.jpg", "renditions": []}, False, ""),
        ({"AlarmName": "errors", "NewStateValue": "ALARM", "NewStateReason": "threshold"}, True, "threshold"),
        ({"AlarmName": "errors", "NewStateReason": "no state given"}, True, "errors: changed state"),
    ],
)
def test_notify_people(body: dict[str, Any], expect_sent: bool, needle: str) -> None:
    settings = Settings.from_env(
        {
            "UPLOAD_BUCKET": "up",
            "PROCESSED_BUCKET": "out",
            "CATALOG_TABLE": "t",
            "EVENTS_TOPIC": "ev",
            "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:alerts",
        }
    )
    p = make_pipeline(settings=settings)
    alerts.notify_people(p, json.dumps(body))
    assert isinstance(p.notifier, MemoryNotifier)
    assert len(p.notifier.messages) == int(expect_sent)
    if expect_sent:
        assert needle in p.notifier.messages[0].message
        assert "\n" not in p.notifier.messages[0].subject
        assert "None" not in p.notifier.messages[0].subject


def test_notify_forwards_plain_text() -> None:
    settings = Settings.from_env(
        {
            "UPLOAD_BUCKET": "up",
            "PROCESSED_BUCKET": "out",
            "CATALOG_TABLE": "t",
            "EVENTS_TOPIC": "ev",
            "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:alerts",
        }
    )
    p = make_pipeline(settings=settings)
    alerts.notify_people(p, "not json {", "Hello")
    assert isinstance(p.notifier, MemoryNotifier)
    assert p.notifier.messages[0].message == "not json {"


ALERTS = Settings.from_env(
    {
        "UPLOAD_BUCKET": "up",
        "PROCESSED_BUCKET": "out",
        "CATALOG_TABLE": "t",
        "EVENTS_TOPIC": "ev",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:alerts",
        "NOTIFY_ON_SUCCESS": "true",
    }
)


@pytest.mark.parametrize(
    "body",
    [{"type": "image.processed", "source_key": "uploads/x.jpg", "renditions": r} for r in ("abc", 5, [1, None, "x"], {"preset": "t"})]
    + [{"type": kind, "source_key": key} for kind in ("image.rejected", "image.failed", "image.deleted") for key in (5, None, ["a"])],
)
def test_notify_copes_with_events_of_our_types_in_another_shape(body: dict[str, Any]) -> None:
    """Whoever may publish to the events topic can send `image.processed` with any body."""
    p = make_pipeline(settings=ALERTS)
    alerts.notify_people(p, json.dumps(body))
    assert isinstance(p.notifier, MemoryNotifier)
    [sent] = p.notifier.messages
    key = body["source_key"] if isinstance(body["source_key"], str) else "?"
    assert f"Image: {key}\n" in sent.message and sent.attributes["event_type"] == body["type"]
    if "renditions" in body:
        assert "Renditions (0," in sent.message


def test_notify_forwards_json_nested_too_deep_to_parse_as_text() -> None:
    p = make_pipeline(settings=ALERTS)
    alerts.notify_people(p, "[" * 100_000, "deep")  # json.loads raises RecursionError on it
    assert isinstance(p.notifier, MemoryNotifier)
    assert [m.message for m in p.notifier.messages] == ["[" * 100_000]


def test_notify_cuts_a_forwarded_message_to_what_sns_accepts() -> None:
    """A foreign JSON message under SNS's 256 KB grows past it when pretty-printed for people:
    SNS would refuse the alert, and the retries end in the dead-letter queue."""
    body = {f"field{i:05d}": i for i in range(12_000)}
    compact, pretty = len(json.dumps(body)), len(json.dumps(body, indent=2))
    assert compact < alerts.SNS_MESSAGE_BYTES < pretty
    p = make_pipeline(settings=ALERTS)
    alerts.notify_people(p, json.dumps(body), "from a neighbour")
    assert isinstance(p.notifier, MemoryNotifier)
    [sent] = p.notifier.messages
    assert len(sent.message.encode()) <= alerts.SNS_MESSAGE_BYTES
    assert sent.message.startswith('{\n  "field00000": 0') and "[cut: the message was" in sent.message


@pytest.mark.parametrize(
    ("region", "caller", "expected"),
    [
        ("us-east-1", "arn:aws:iam::123456789012:user/ci", "arn:aws:sns:us-east-1:123456789012:events"),
        ("cn-north-1", "arn:aws-cn:iam::123456789012:user/ci", "arn:aws-cn:sns:cn-north-1:123456789012:events"),
        ("us-gov-west-1", "arn:aws-us-gov:iam::123456789012:user/ci", "arn:aws-us-gov:sns:us-gov-west-1:123456789012:events"),
    ],
)
def test_topic_names_become_arns_in_the_accounts_own_partition(region: str, caller: str, expected: str) -> None:
    """A topic name is published to as an ARN; GovCloud's partition is aws-us-gov (guessing
    from the region prefix named `aws` there, and every publish failed)."""
    from chalicelib.notify import SnsNotifier

    class Sts:
        def get_caller_identity(self) -> dict[str, str]:
            return {"Account": "123456789012", "Arn": caller}

    class Sns:
        def __init__(self) -> None:
            self.arns: list[str] = []

        def publish(self, **kwargs: Any) -> dict[str, str]:
            self.arns.append(kwargs["TopicArn"])
            return {"MessageId": "m"}

    sns = Sns()
    notifier = SnsNotifier(sns, Sts(), region)
    notifier.publish("events", subject="s", message="{}", attributes={})
    notifier.publish("arn:aws:sns:us-east-1:1:other", subject="s", message="{}", attributes={})
    assert sns.arns == [expected, "arn:aws:sns:us-east-1:1:other"]
