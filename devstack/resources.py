"""Create the stage's AWS resources in the emulator and wire the app's event sources.

The wiring is derived from the app's own registrations (`app.event_sources`), the same list
`chalice deploy`/`chalice package` turn into S3 notifications, SNS subscriptions and SQS
event source mappings, so a handler added to app.py is wired here with no second list:

- `@app.on_s3_event`: bucket notification (events, prefix, suffix) -> SQS queue
- `@app.on_sns_message`: topic subscription -> SQS queue
- `@app.on_sqs_message`: the handler's own queue (plus `<queue>-dlq`)

The relay (relay.py) long-polls those queues and invokes the handlers. Two more queues
serve the local stack itself: changes under OUTPUT_PREFIX in the processed bucket (the
outbox mirror) and the events topic (the live log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError
from chalice.app import S3EventConfig, SNSEventConfig, SQSEventConfig

from chalicelib.settings import Settings

ACCOUNT_ID = "123456789012"  # moto's default account; the dev stage's ARNs use it
RouteKind = Literal["s3", "sns", "sqs"]


@dataclass(frozen=True)
class FunctionConfig:
    memory_mb: int
    timeout_s: int


@dataclass(frozen=True)
class Route:
    """One event source of the app, delivered through an SQS queue to one handler."""

    handler: str  # key in app.handler_map
    kind: RouteKind
    source: str  # bucket, topic ARN or queue name (for people)
    queue_name: str
    queue_url: str
    queue_arn: str
    dead_letter_name: str
    dead_letter_url: str
    function_name: str  # what Lambda would call it: <app>-<stage>-<handler>
    memory_mb: int
    timeout_s: int
    batch_size: int = 1


@dataclass(frozen=True)
class Wiring:
    routes: tuple[Route, ...]
    mirror_queue_url: str
    monitor_queue_url: str
    topics: dict[str, str]  # name -> ARN
    queues: dict[str, str]  # name -> URL, every queue the stack made
    buckets: tuple[str, ...]
    not_relayed: tuple[str, ...] = field(default=())  # handlers of kinds the relay does not run


def topic_name(topic: str) -> str:
    """Event sources and settings name a topic either by name or by ARN."""
    return topic.rsplit(":", 1)[-1] if topic.startswith("arn:") else topic


def provision(
    clients: Callable[[str], Any],
    settings: Settings,
    *,
    app_name: str,
    stage: str,
    event_sources: Iterable[Any],
    function_config: Callable[[str], FunctionConfig],
) -> Wiring:
    """Create every resource the stage needs (idempotent) and return how events flow."""
    made = _Resources(clients, settings)
    made.topic(settings.events_topic)
    if settings.alerts_topic_arn:
        made.topic(settings.alerts_topic_arn)
    _create_table(made.ddb, settings.catalog_table)

    routes: list[Route] = []
    not_relayed: list[str] = []
    for source in event_sources:
        route = made.route(source, f"{app_name}-{stage}-{source.name}", function_config(source.name))
        if route is None:
            not_relayed.append(f"{source.name} ({type(source).__name__})")
        else:
            routes.append(route)

    # The local stack's own taps: every rendition written or removed, and every event.
    mirror_url, mirror_arn = made.queue(f"{app_name}-{stage}-local-outbox")
    made.notify(
        settings.processed_bucket,
        _queue_notification("local-outbox", mirror_arn, ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], settings.output_prefix, ""),
    )
    monitor_url, monitor_arn = made.queue(f"{app_name}-{stage}-local-monitor")
    made.subscribe(made.topics[topic_name(settings.events_topic)], monitor_arn)

    for bucket in made.buckets:
        _create_bucket(made.s3, bucket)
    for bucket, configs in made.notifications.items():
        made.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configs})
    return Wiring(tuple(routes), mirror_url, monitor_url, made.topics, made.queues, tuple(made.buckets), tuple(not_relayed))


class _Resources:
    """What `provision` has made so far (queues, topics, buckets, notifications) and the
    calls that make more."""

    def __init__(self, clients: Callable[[str], Any], settings: Settings) -> None:
        self.s3, self.sqs, self.sns, self.ddb = clients("s3"), clients("sqs"), clients("sns"), clients("dynamodb")
        self.region = settings.region
        self.queues: dict[str, str] = {}
        self.topics: dict[str, str] = {}
        self.buckets = [settings.upload_bucket, settings.processed_bucket]
        self.notifications: dict[str, list[dict[str, Any]]] = {}

    def queue(self, name: str, visibility_s: int = 30) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_s)})["QueueUrl"]
        self.queues[name] = url
        return url, f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"

    def topic(self, name_or_arn: str) -> str:
        name = topic_name(name_or_arn)
        self.topics[name] = arn = str(self.sns.create_topic(Name=name)["TopicArn"])
        return arn

    def subscribe(self, topic_arn: str, queue_arn: str) -> None:
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})

    def notify(self, bucket: str, config: dict[str, Any]) -> None:
        self.notifications.setdefault(bucket, []).append(config)

    def route(self, source: Any, function_name: str, config: FunctionConfig) -> Route | None:
        """The queue (and dead-letter queue) one event source is delivered through; None for
        kinds the relay does not run."""
        if isinstance(source, SQSEventConfig):
            name = source.queue or str(source.queue_arn).rsplit(":", 1)[-1]
            dead_letter = f"{name}-dlq"
            batch = max(1, min(int(source.batch_size or 1), 10))
        elif isinstance(source, S3EventConfig | SNSEventConfig):
            name, dead_letter, batch = f"{function_name}-events", f"{function_name}-dlq", 1
        else:
            return None
        # The relay holds a message through the first try and two retries.
        url, arn = self.queue(name, 3 * config.timeout_s + 60)
        dead_letter_url, _ = self.queue(dead_letter)
        kind, described = self._connect(source, name, arn)
        return Route(
            source.name,
            kind,
            described,
            name,
            url,
            arn,
            dead_letter,
            dead_letter_url,
            function_name,
            config.memory_mb,
            config.timeout_s,
            batch,
        )

    def _connect(self, source: Any, queue_name: str, queue_arn: str) -> tuple[RouteKind, str]:
        """Point the source at its queue; returns its kind and a description for people."""
        if isinstance(source, S3EventConfig):
            if source.bucket not in self.buckets:
                self.buckets.append(source.bucket)
            events = source.events or ["s3:ObjectCreated:*"]
            self.notify(source.bucket, _queue_notification(source.name, queue_arn, events, source.prefix, source.suffix))
            return "s3", f"s3://{source.bucket}/{source.prefix or ''}*{source.suffix or ''} {','.join(source.events or [])}"
        if isinstance(source, SNSEventConfig):
            topic_arn = self.topic(source.topic)
            self.subscribe(topic_arn, queue_arn)
            return "sns", topic_arn
        return "sqs", queue_name


def _queue_notification(name: str, queue_arn: str, events: list[str], prefix: str | None, suffix: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"Id": name, "QueueArn": queue_arn, "Events": list(events)}
    rules = [{"Name": rule, "Value": value} for rule, value in (("prefix", prefix), ("suffix", suffix)) if value]
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    return config


def _create_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise


def _create_table(ddb: Any, table: str) -> None:
    """The catalog as the shared contract defines it: key `image_id`, GSIs `by_updated` and
    `by_status`, both projecting all attributes."""
    indexes = [("by_updated", "listing"), ("by_status", "status")]
    try:
        ddb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("image_id", "listing", "status", "updated_at")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": "updated_at", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index, hash_key in indexes
            ],
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise


def describe(wiring: Wiring) -> list[str]:
    """Human lines: how each event source reaches its handler."""
    lines = [
        f"{route.source} -> sqs:{route.queue_name} -> {route.handler} (dead letters: {route.dead_letter_name})" for route in wiring.routes
    ]
    lines += [f"{name}: not run locally" for name in wiring.not_relayed]
    return lines
