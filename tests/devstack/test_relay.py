"""The local stack's wiring and relay against moto: event sources come from the app's own
registrations, and handlers are invoked the way Lambda invokes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from chalice.app import Chalice, S3Event, SNSEvent, SQSEvent
from moto import mock_aws

from chalicelib.settings import Settings
from devstack.relay import DeadLetter, Relay
from devstack.resources import FunctionConfig, Route, Wiring, provision

SETTINGS = Settings(upload_bucket="in-bucket", processed_bucket="out-bucket", catalog_table="catalog", events_topic="events")


def _app(calls: list[Any]) -> Chalice:
    app = Chalice(app_name="relay-test")

    @app.on_s3_event(bucket="in-bucket", prefix="uploads/", events=["s3:ObjectCreated:*"])
    def on_upload(event: S3Event) -> None:
        calls.append(("s3", event.key))
        if event.key.endswith("boom"):
            raise RuntimeError(f"cannot handle {event.key}")

    @app.on_sns_message(topic="events")
    def on_note(event: SNSEvent) -> None:
        calls.append(("sns", event.subject, event.message))

    @app.on_sqs_message(queue="work", batch_size=5)
    def on_work(event: SQSEvent) -> None:
        calls.append(("sqs", sorted(record.body for record in event)))

    return app


@pytest.fixture
def stack() -> Iterator[tuple[Chalice, list[Any], Wiring, dict[str, Any]]]:
    calls: list[Any] = []
    app = _app(calls)
    with mock_aws():
        clients = {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "sqs", "sns", "dynamodb")}
        wiring = provision(
            clients.__getitem__,
            SETTINGS,
            app_name=app.app_name,
            stage="dev",
            event_sources=app.event_sources,
            function_config=lambda name: FunctionConfig(256, 5),
        )
        yield app, calls, wiring, clients


def _route(wiring: Wiring, handler: str) -> Route:
    return next(route for route in wiring.routes if route.handler == handler)


def _receive(sqs: Any, route: Route) -> list[dict[str, Any]]:
    return sqs.receive_message(QueueUrl=route.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]).get(
        "Messages", []
    )


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    return sum(int(v) for v in attributes["Attributes"].values())


def test_wiring_is_derived_from_the_apps_handlers(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    _, _, wiring, clients = stack
    assert {(r.handler, r.kind) for r in wiring.routes} == {("on_upload", "s3"), ("on_note", "sns"), ("on_work", "sqs")}
    assert _route(wiring, "on_work").queue_name == "work" and _route(wiring, "on_work").dead_letter_name == "work-dlq"
    assert _route(wiring, "on_upload").function_name == "relay-test-dev-on_upload"
    notifications = clients["s3"].get_bucket_notification_configuration(Bucket="in-bucket")["QueueConfigurations"]
    (upload,) = notifications
    assert upload["Events"] == ["s3:ObjectCreated:*"]
    assert [(rule["Name"].lower(), rule["Value"]) for rule in upload["Filter"]["Key"]["FilterRules"]] == [("prefix", "uploads/")]
    table = clients["dynamodb"].describe_table(TableName="catalog")["Table"]
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {"by_updated": ["listing", "updated_at"], "by_status": ["status", "updated_at"]}


def test_s3_records_are_invoked_one_at_a_time_and_test_events_skipped(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    route = _route(wiring, "on_upload")
    clients["s3"].put_object(Bucket="in-bucket", Key="uploads/a photo+1.jpg", Body=b"x")
    clients["s3"].put_object(Bucket="in-bucket", Key="elsewhere/b.jpg", Body=b"x")  # outside the prefix: no event
    relay = Relay(clients["sqs"], app.handler_map, wiring.routes, retry_delays=(0, 0))
    messages = _receive(clients["sqs"], route)
    assert any(json.loads(m["Body"]).get("Event") == "s3:TestEvent" for m in messages)
    for message in messages:
        assert relay.deliver(route, [message])
    assert calls == [("s3", "uploads/a photo+1.jpg")]  # decoded once, by Chalice, as on Lambda
    assert _depth(clients["sqs"], route.queue_url) == 0


def test_a_failing_handler_is_retried_twice_then_parked_and_reported(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    route = _route(wiring, "on_upload")
    parked: list[DeadLetter] = []
    relay = Relay(clients["sqs"], app.handler_map, wiring.routes, retry_delays=(0, 0), on_dead_letter=parked.append)
    clients["s3"].put_object(Bucket="in-bucket", Key="uploads/boom", Body=b"x")
    for message in _receive(clients["sqs"], route):
        relay.deliver(route, [message])
    assert calls == [("s3", "uploads/boom")] * 3
    (letter,) = parked
    assert letter.attempts == 3 and "cannot handle uploads/boom" in letter.error
    (dead,) = clients["sqs"].receive_message(QueueUrl=route.dead_letter_url, MessageAttributeNames=["All"])["Messages"]
    assert unquote_plus(json.loads(dead["Body"])["Records"][0]["s3"]["object"]["key"]) == "uploads/boom"
    assert "cannot handle" in dead["MessageAttributes"]["ErrorMessage"]["StringValue"]
    assert _depth(clients["sqs"], route.queue_url) == 0, "the event moved to the dead-letter queue, not lost, not repeated"


def test_sns_messages_arrive_in_the_lambda_envelope(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    route = _route(wiring, "on_note")
    clients["sns"].publish(TopicArn=wiring.topics["events"], Subject="Hello", Message='{"type": "image.rejected"}')
    relay = Relay(clients["sqs"], app.handler_map, wiring.routes)
    assert relay.deliver(route, _receive(clients["sqs"], route))
    assert calls == [("sns", "Hello", '{"type": "image.rejected"}')]


def test_sqs_handlers_get_a_batch(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    route = _route(wiring, "on_work")
    for body in ("a", "b", "c"):
        clients["sqs"].send_message(QueueUrl=route.queue_url, MessageBody=body)
    relay = Relay(clients["sqs"], app.handler_map, wiring.routes)
    assert relay.deliver(route, _receive(clients["sqs"], route))
    assert calls == [("sqs", ["a", "b", "c"])]


def test_the_polling_threads_deliver_without_waiting(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    relay = Relay(clients["sqs"], app.handler_map, wiring.routes, wait_s=1)
    relay.start()
    try:
        clients["s3"].put_object(Bucket="in-bucket", Key="uploads/live.jpg", Body=b"x")
        deadline = time.monotonic() + 10
        while ("s3", "uploads/live.jpg") not in calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        relay.stop()
    assert ("s3", "uploads/live.jpg") in calls


def test_a_handler_over_its_lambda_timeout_is_reported(stack: tuple[Chalice, list[Any], Wiring, dict[str, Any]]) -> None:
    app, calls, wiring, clients = stack
    route = replace(_route(wiring, "on_work"), timeout_s=0)  # any run is over a 0 s timeout
    overtime: list[tuple[str, float]] = []
    relay = Relay(clients["sqs"], app.handler_map, [route], on_overtime=lambda r, seconds: overtime.append((r.function_name, seconds)))
    clients["sqs"].send_message(QueueUrl=route.queue_url, MessageBody="slow")
    assert relay.deliver(route, _receive(clients["sqs"], route))
    assert calls == [("sqs", ["slow"])]
    assert [name for name, _ in overtime] == ["relay-test-dev-on_work"]


def test_a_delivery_that_fails_outside_the_handler_is_logged_not_lost_silently(caplog: pytest.LogCaptureFixture) -> None:
    """The emulator refusing the delete (or the park) after the handler ran: the message comes
    back after its visibility timeout, and the log says why instead of nothing at all."""

    class Sqs:
        def __init__(self) -> None:
            self.sent = False

        def receive_message(self, **_: Any) -> dict[str, Any]:
            if self.sent:
                time.sleep(0.05)
                return {}
            self.sent = True
            return {"Messages": [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "job", "MD5OfBody": ""}]}

        def delete_message(self, **_: Any) -> None:
            raise ConnectionError("emulator went away")

    route = Route("work", "sqs", "work", "work", "url", "arn:aws:sqs:us-east-1:1:work", "work-dlq", "dlq-url", "fn", 128, 5)
    handled: list[Any] = []
    relay = Relay(Sqs(), {"work": lambda event, context: handled.append(event)}, [route])
    with caplog.at_level("WARNING", logger="image_pipeline.local.relay"):
        relay.start()
        deadline = time.monotonic() + 5
        while "emulator went away" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        relay.stop()
    assert handled and "emulator went away" in caplog.text and "work" in caplog.text
