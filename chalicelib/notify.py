"""Publishing: the `Notifier` protocol, SNS and in-memory implementations, and the text
of human-readable alerts."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

_SUBJECT_MAX = 100


class Notifier(Protocol):
    def publish(self, topic: str, *, subject: str, message: str, attributes: Mapping[str, str]) -> str:
        """Publish and return the message id. `topic` is a topic name or ARN."""
        ...


def clean_subject(subject: str) -> str:
    """SNS subjects: printable ASCII, no line breaks, at most 100 characters."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject).strip()
    return (text[: _SUBJECT_MAX - 3] + "...") if len(text) > _SUBJECT_MAX else (text or "image-pipeline")


class SnsNotifier:
    def __init__(self, sns: Any, sts: Any, region: str) -> None:
        self._sns = sns
        self._sts = sts
        self._region = region

    @cached_property
    def _identity(self) -> tuple[str, str]:
        """(partition, account). GetCallerIdentity needs no IAM permission; called once per
        container. The partition comes from the caller's ARN: aws, aws-cn, aws-us-gov, ..."""
        identity = self._sts.get_caller_identity()
        return str(identity["Arn"]).split(":")[1], str(identity["Account"])

    def topic_arn(self, topic: str) -> str:
        if topic.startswith("arn:"):
            return topic
        partition, account = self._identity
        return f"arn:{partition}:sns:{self._region}:{account}:{topic}"

    def publish(self, topic: str, *, subject: str, message: str, attributes: Mapping[str, str]) -> str:
        response = self._sns.publish(
            TopicArn=self.topic_arn(topic),
            Subject=clean_subject(subject),
            Message=message,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        return str(response["MessageId"])


@dataclass(frozen=True)
class Published:
    topic: str
    subject: str
    message: str
    attributes: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.message)


class MemoryNotifier:
    def __init__(self) -> None:
        self.messages: list[Published] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, *, subject: str, message: str, attributes: Mapping[str, str]) -> str:
        with self._lock:
            self.messages.append(Published(topic, clean_subject(subject), message, dict(attributes)))
            return f"memory-{len(self.messages)}"
