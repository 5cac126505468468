"""The event relay: SQS queues -> the app's handlers, invoked the way Lambda invokes them.

One long-poll thread per queue (an upload never waits for a polling interval: moto hands a
message to a waiting long poll at once) feeding a small pool per queue, so a slow image does
not hold up the notifier. Per delivery:

- S3 notifications: one invocation per record (`{"Records": [record]}`); `s3:TestEvent`
  (sent when a notification is configured) is skipped, as Lambda never sees it.
- SNS via SQS: the SNS message is wrapped in the Lambda envelope `Records[].Sns`.
- SQS handlers: one invocation per received batch, records in Lambda's SQS shape.

The S3 upload route may run its handler in worker processes (`HandlerProcesses`, one image
per worker at a time), so images at once do not serialise on this process's GIL; the other
routes, quick, run in the relay's threads.

A handler that raises is retried twice (Lambda's asynchronous invocation policy, with short
local delays); then the event is parked in the route's dead-letter queue and reported,
never dropped. The SQS message is deleted only once its events succeeded or were parked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalice.local import LambdaContext

from devstack.resources import Route
from devstack.workers import HandlerProcesses, Invocation

log = logging.getLogger("image_pipeline.local.relay")

Handler = Callable[[dict[str, Any], Any], Any]
LAMBDA_ASYNC_RETRIES = 2


@dataclass(frozen=True)
class DeadLetter:
    route: Route
    event: dict[str, Any]
    error: str
    attempts: int


class Relay:
    def __init__(
        self,
        sqs: Any,
        handlers: Mapping[str, Handler],
        routes: Sequence[Route],
        *,
        concurrency: int = 1,
        on_dead_letter: Callable[[DeadLetter], None] = lambda _: None,
        on_overtime: Callable[[Route, float], None] = lambda route, seconds: None,
        retry_delays: Sequence[float] = (1.0, 2.0),
        wait_s: int = 1,
        processes: HandlerProcesses | None = None,
    ) -> None:
        missing = [route.handler for route in routes if route.handler not in handlers]
        if missing:
            raise ValueError(f"no handler registered for {', '.join(missing)}")
        self._sqs = sqs
        self._handlers = handlers
        self._routes = tuple(routes)
        self._concurrency = max(1, concurrency)
        self._on_dead_letter = on_dead_letter
        self._on_overtime = on_overtime
        self._retry_delays = tuple(retry_delays)[:LAMBDA_ASYNC_RETRIES]
        self._wait_s = wait_s
        self._processes = processes
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pools: list[ThreadPoolExecutor] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for route in self._routes:
            # The S3 upload route gets the configured concurrency; topic and queue
            # handlers are quick and run one at a time.
            workers = self._concurrency if route.kind == "s3" else 1
            pool = ThreadPoolExecutor(workers, thread_name_prefix=f"invoke-{route.handler}")
            self._pools.append(pool)
            thread = threading.Thread(target=self._poll, args=(route, pool, workers), name=f"poll-{route.handler}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and let running invocations finish (an image is never cut in half)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self._wait_s + 5)
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown()

    # --- polling -------------------------------------------------------------------------

    def _poll(self, route: Route, pool: ThreadPoolExecutor, workers: int) -> None:
        slots = threading.Semaphore(workers)
        while not self._stop.is_set():
            if not slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=route.queue_url,
                    MaxNumberOfMessages=route.batch_size,
                    WaitTimeSeconds=self._wait_s,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                slots.release()
                if not self._stop.is_set():
                    log.warning("receiving from %s failed", route.queue_name, exc_info=True)
                    self._stop.wait(1)
                continue
            if not messages:
                slots.release()
                continue
            future = pool.submit(self.deliver, route, messages)
            future.add_done_callback(lambda done: self._delivered(route, done, slots))

    def _delivered(self, route: Route, done: Future[bool], slots: threading.Semaphore) -> None:
        slots.release()
        # deliver() raises only when the emulator fails it (delete, park): the messages come
        # back after their visibility timeout, and this line says why.
        if not done.cancelled() and (error := done.exception()) is not None:
            log.warning("delivering from %s failed; the messages will be received again", route.queue_name, exc_info=error)

    # --- delivery ------------------------------------------------------------------------

    def deliver(self, route: Route, messages: Sequence[Mapping[str, Any]]) -> bool:
        """Invoke the route's handler for `messages`; delete them once every event succeeded
        or was parked. Returns False if the relay stopped before that (messages stay queued)."""
        for event, unreadable in invocations(route, messages):
            if unreadable is not None:
                self._park(route, event, unreadable, 0)
            elif not self._invoke(route, event):
                return False
        for message in messages:
            self._sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _invoke(self, route: Route, event: dict[str, Any]) -> bool:
        attempts = len(self._retry_delays) + 1
        error = ""
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            failed = self._call(route, event)
            # Not enforced here (the work would be lost), but Lambda would have cut it off.
            if (seconds := time.monotonic() - started) > route.timeout_s:
                self._on_overtime(route, seconds)
            if failed is None:
                return True
            error = failed
            log.warning("%s failed (attempt %d of %d): %s", route.function_name, attempt, attempts, error)
            if attempt < attempts and self._stop.wait(self._retry_delays[attempt - 1]):
                return False
        self._park(route, event, error, attempts)
        return True

    def _call(self, route: Route, event: dict[str, Any]) -> str | None:
        """One invocation: None if the handler returned, else its error ("Type: message")."""
        if self._processes is not None and route.kind == "s3":
            return self._processes.invoke(Invocation(route.handler, route.function_name, route.memory_mb, route.timeout_s, event))
        context = LambdaContext(route.function_name, route.memory_mb, max_runtime_ms=route.timeout_s * 1000)
        try:
            self._handlers[route.handler](event, context)
        except Exception as exc:
            log.warning("%s raised", route.function_name, exc_info=True)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _park(self, route: Route, event: dict[str, Any], error: str, attempts: int) -> None:
        attributes = {
            "ErrorMessage": {"DataType": "String", "StringValue": error[:1000] or "unknown"},
            "FunctionName": {"DataType": "String", "StringValue": route.function_name},
            "Attempts": {"DataType": "Number", "StringValue": str(attempts)},
        }
        if route.kind == "sqs":
            # Like an SQS redrive: the original messages move, bodies untouched.
            for record in event.get("Records", []):
                self._sqs.send_message(QueueUrl=route.dead_letter_url, MessageBody=record["body"], MessageAttributes=attributes)
        else:
            # Like Lambda's asynchronous dead-letter queue: the invocation event itself.
            self._sqs.send_message(QueueUrl=route.dead_letter_url, MessageBody=json.dumps(event), MessageAttributes=attributes)
        self._on_dead_letter(DeadLetter(route, event, error, attempts))


def invocations(route: Route, messages: Sequence[Mapping[str, Any]]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(event, None) for each Lambda invocation the messages make, or (raw, reason) for a
    message that cannot be turned into one."""
    if route.kind == "sqs":
        yield {"Records": [_sqs_record(route, message) for message in messages]}, None
        return
    for message in messages:
        try:
            body = json.loads(message["Body"])
            if not isinstance(body, dict):
                raise TypeError("not a JSON object")
        except (TypeError, ValueError) as exc:
            yield {"Body": message.get("Body")}, f"unreadable {route.kind} message: {exc}"
            continue
        if route.kind == "s3":
            if body.get("Event") == "s3:TestEvent":
                continue
            for record in body.get("Records", []):
                yield {"Records": [record]}, None
        else:
            yield {"Records": [_sns_record(body)]}, None


def _sns_record(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """An SNS notification as delivered to SQS -> the record Lambda gets from SNS."""
    topic_arn = envelope.get("TopicArn", "")
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
        "Sns": {
            "Type": envelope.get("Type", "Notification"),
            "MessageId": envelope.get("MessageId", ""),
            "TopicArn": topic_arn,
            "Subject": envelope.get("Subject"),
            "Message": envelope.get("Message", ""),
            "Timestamp": envelope.get("Timestamp", ""),
            "SignatureVersion": envelope.get("SignatureVersion", "1"),
            "Signature": envelope.get("Signature", ""),
            "SigningCertUrl": envelope.get("SigningCertURL", ""),
            "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
            "MessageAttributes": envelope.get("MessageAttributes", {}),
        },
    }


def _sqs_record(route: Route, message: Mapping[str, Any]) -> dict[str, Any]:
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": route.queue_arn,
        "awsRegion": route.queue_arn.split(":")[3],
    }
