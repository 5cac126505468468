"""image-pipeline: Chalice wiring only. Every decision lives in chalicelib/."""

from __future__ import annotations

from functools import cache

from chalice.app import Chalice, S3Event, SNSEvent, SQSEvent

from chalicelib import reprocess as reprocessing
from chalicelib import service, wiring
from chalicelib.presets import load_profile
from chalicelib.settings import Settings

# Read and validated at import: the decorators below need the bucket and topic names, and
# a misconfigured stage should fail at deploy/cold start, not on the first upload.
settings = Settings.from_env()
profile = load_profile(settings.presets)

app = Chalice(app_name="image-pipeline")


@cache
def pipeline() -> service.Pipeline:
    """Adapters are built on first use and reused by every warm invocation."""
    return wiring.aws_pipeline(settings, profile)


@app.on_s3_event(bucket=settings.upload_bucket, prefix=settings.upload_prefix, events=["s3:ObjectCreated:*"])
def process_upload(event: S3Event) -> None:
    for upload in service.uploads_from_event(event.to_dict()):
        service.process_upload(pipeline(), upload)


@app.on_s3_event(bucket=settings.upload_bucket, prefix=settings.upload_prefix, events=["s3:ObjectRemoved:*"])
def remove_renditions(event: S3Event) -> None:
    for removal in service.uploads_from_event(event.to_dict()):
        service.remove_source(pipeline(), removal)


# batch_size 5: a redelivered batch skips what is already done (see reprocess.handle_messages).
@app.on_sqs_message(queue=settings.reprocess_queue, batch_size=5)
def reprocess(event: SQSEvent) -> None:
    reprocessing.handle_messages(pipeline(), [record.body for record in event])


@app.on_sns_message(topic=settings.events_topic)
def notify(event: SNSEvent) -> None:
    service.notify_people(pipeline(), event.message, event.subject)
