"""image-pipeline: Chalice wiring only. Every decision lives in chalicelib/."""

from __future__ import annotations

from functools import cache

from chalice.app import Chalice, S3Event, SNSEvent

from chalicelib import aws, service
from chalicelib.catalog import DynamoCatalog
from chalicelib.notify import SnsNotifier
from chalicelib.presets import load_profile
from chalicelib.settings import Settings
from chalicelib.storage import S3ObjectStore

# Read and validated at import: the decorators below need the bucket and topic names, and
# a misconfigured stage should fail at deploy/cold start, not on the first upload.
settings = Settings.from_env()
profile = load_profile(settings.presets)

app = Chalice(app_name="image-pipeline")


@cache
def pipeline() -> service.Pipeline:
    """Adapters are built on first use and reused by every warm invocation."""
    return service.Pipeline(
        settings=settings,
        profile=profile,
        store=S3ObjectStore(aws.client("s3", settings.region)),
        catalog=DynamoCatalog(aws.client("dynamodb", settings.region), settings.catalog_table),
        notifier=SnsNotifier(aws.client("sns", settings.region), aws.client("sts", settings.region), settings.region),
    )


@app.on_s3_event(bucket=settings.upload_bucket, prefix=settings.upload_prefix, events=["s3:ObjectCreated:*"])
def process_upload(event: S3Event) -> None:
    for upload in service.uploads_from_event(event.to_dict()):
        service.process_upload(pipeline(), upload)


@app.on_sns_message(topic=settings.events_topic)
def notify(event: SNSEvent) -> None:
    service.notify_people(pipeline(), event.message, event.subject)
