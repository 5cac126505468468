"""Reachability checks for `GET /health`: the `Probe` protocol, an AWS implementation and a
fake. Each check is one cheap read-only call; a failure is reported, never raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError


class Probe(Protocol):
    def bucket(self, name: str) -> str | None:
        """None when reachable, else a short reason."""
        ...

    def table(self, name: str) -> str | None: ...
    def topic(self, name_or_arn: str) -> str | None: ...


class AwsProbe:
    """Clients come from `clients(service_name)` on first use: most API invocations never
    check health, and a cold start should not pay for SNS/STS clients it does not use."""

    def __init__(self, clients: Callable[[str], Any], topic_arn: Callable[[str], str]) -> None:
        self._clients = clients
        self._topic_arn = topic_arn

    def bucket(self, name: str) -> str | None:
        return _attempt(lambda: self._clients("s3").head_bucket(Bucket=name))

    def table(self, name: str) -> str | None:
        def describe() -> None:
            status = self._clients("dynamodb").describe_table(TableName=name)["Table"].get("TableStatus", "ACTIVE")
            if status not in ("ACTIVE", "UPDATING"):
                raise RuntimeError(f"table status is {status}")

        return _attempt(describe)

    def topic(self, name_or_arn: str) -> str | None:
        return _attempt(lambda: self._clients("sns").get_topic_attributes(TopicArn=self._topic_arn(name_or_arn)))


def _attempt(call: Callable[[], object]) -> str | None:
    try:
        call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message') or 'request failed'}"
    except (BotoCoreError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class FakeProbe:
    """Every resource reachable except those named in `down` (unit tests)."""

    def __init__(self, down: dict[str, str] | None = None) -> None:
        self.down = down or {}

    def bucket(self, name: str) -> str | None:
        return self.down.get(name)

    def table(self, name: str) -> str | None:
        return self.down.get(name)

    def topic(self, name_or_arn: str) -> str | None:
        return self.down.get(name_or_arn)
