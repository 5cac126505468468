"""image-pipeline: Chalice wiring only. Every decision lives in chalicelib/."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from chalice.app import Chalice, CognitoUserPoolAuthorizer, IAMAuthorizer, Request, Response, SQSEvent

from chalicelib import alerts, api, events, health, processing, removal, similar, wiring
from chalicelib import reprocess as reprocessing
from chalicelib.adapters import Adapters
from chalicelib.deadline import Deadline
from chalicelib.gallery import gallery_reply
from chalicelib.identity import Caller, caller_from
from chalicelib.presets import load_profile
from chalicelib.settings import Settings

# Read and validated at import: the decorators below need the bucket and topic names, and
# a misconfigured stage should fail at deploy/cold start, not on the first upload.
settings = Settings.from_env()
settings.refuse_anonymous_writes()  # WRITE_AUTH=none outside the local stack only on purpose
profile = load_profile(settings.presets)

app = Chalice(app_name="image-pipeline")
app.debug = settings.api_debug  # tracebacks to clients only against the local emulator


def route_auth(mode: str) -> dict[str, Any]:
    """A route's auth per WRITE_AUTH / READ_AUTH: open, an API Gateway API key (x-api-key),
    SigV4 (IAM), or a Cognito user pool's ID token (Authorization header)."""
    if mode == "api_key":
        return {"api_key_required": True}
    if mode == "iam":
        return {"authorizer": IAMAuthorizer()}
    if mode == "cognito":
        return {"authorizer": CognitoUserPoolAuthorizer("cognito", provider_arns=[str(settings.cognito_user_pool_arn)])}
    return {}


WRITE_AUTH = route_auth(settings.write_auth)
READ_AUTH = route_auth(settings.read_auth)


@cache
def pipeline() -> Adapters:
    """Adapters are built on first use and reused by every warm invocation."""
    return wiring.aws_pipeline(settings, profile)


@cache
def api_context() -> api.Api:
    """The REST routes' adapters (the API function never builds the processing pipeline)."""
    return wiring.aws_api(settings, profile)


def _answer(call: Callable[[], api.Reply]) -> Response:
    reply = api.run(call, debug=settings.api_debug, where=_request().path)
    headers: dict[str, str | list[str]] = {**reply.headers}
    return Response(body=reply.body, status_code=reply.status, headers=headers)


def _request() -> Request:
    request = app.current_request
    assert request is not None  # always set while a route runs
    return request


def _caller() -> Caller | None:
    """The signed-in user API Gateway's Cognito authorizer vouched for (WRITE_AUTH=cognito)."""
    return caller_from(_request().context)


@app.middleware("http")
def uniform_errors(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Errors Chalice produces itself (415, 405, ...) get the API's error shape too, and every
    JSON answer `nosniff` and `no-store` (records and presigned URLs are per caller and short-lived)."""
    response = get_response(event)
    body = api.uniform_error(response.status_code, response.body)
    if body is not None:
        response.body = body
        response.headers["Content-Type"] = "application/json"
    if str(response.headers.get("Content-Type", "application/json")).startswith("application/json"):
        response.headers.update(api.JSON_HARDENING)  # never sniffed as HTML, never cached
    return response


@app.route("/", methods=["GET"])
def gallery() -> Response:
    """The gallery page (HTML): thumbnails, upload with progress, rendition details."""
    return _answer(lambda: gallery_reply(api_context()))


@app.route("/images", methods=["GET"], **READ_AUTH)
def list_images() -> Response:
    """List images, newest first (?limit=, ?next=, ?status=)."""
    return _answer(lambda: api.list_images(api_context(), _request().query_params))


@app.route("/images/{image_id}", methods=["GET"], **READ_AUTH)
def get_image(image_id: str) -> Response:
    """One image: its catalog record, a URL per rendition, a srcset per format (AVIF, WebP, JPEG) and a ready-to-paste <picture>."""
    return _answer(lambda: api.get_image(api_context(), image_id))


@app.route("/images/{image_id}/similar", methods=["GET"], **READ_AUTH)
def similar_images(image_id: str) -> Response:
    """Near-duplicates of one image (the same picture re-encoded, rescaled or lightly cropped), nearest first."""
    return _answer(lambda: similar.similar_images(api_context(), image_id))


@app.route("/images/{image_id}", methods=["DELETE"], **WRITE_AUTH)
def delete_image(image_id: str) -> Response:
    """Delete an image: renditions, source (unless ?keep_source=true), CDN copies; a tombstone stays."""
    return _answer(lambda: api.delete_image(api_context(), image_id, _request().query_params, _caller()))


@app.route("/uploads", methods=["POST"], **WRITE_AUTH)
def create_upload() -> Response:
    """Get a presigned POST to upload one image, and the image_id it will have."""
    return _answer(lambda: api.create_upload(api_context(), _request().raw_body, _caller()))


@app.route("/health", methods=["GET"])
def health_status() -> Response:
    """Whether the buckets, table and topic are reachable: `ok` or `degraded`, nothing more."""
    return _answer(lambda: health.status(api_context()))


@app.route("/health/details", methods=["GET"], **WRITE_AUTH)
def health_details() -> Response:
    """For operators (the write auth): the settings in force and each check's result."""
    return _answer(lambda: health.details(api_context()))


RawHandler = Callable[[Any, Any], None]  # (the event as Lambda delivers it, the Lambda context)


def raw_event(register: Callable[[RawHandler], object]) -> Callable[[RawHandler], Callable[[Any, Any], None]]:
    """Register `handler` with a Chalice trigger decorator (so `chalice package` deploys it under
    its name, with its trigger), but run it on the event dict exactly as Lambda delivers it.

    Chalice builds its S3Event/SNSEvent from `Records[0]` before a handler runs and raises on
    an event without records, an `s3:TestEvent`, a record without a key or an SNS record without
    `Subject` (aws/chalice#1801): a bare traceback and Lambda retrying a hopeless event.
    chalicelib/events.py reads the raw dict instead and reports such records. Lambda calls the
    module attribute `app.<name>` (the handler string Chalice writes) and Chalice's own invokers
    (chalice.test, the local stack's relay) `app.handler_map[name]`: both get the entry below
    (a test checks it). Chalice's event middleware does not run for these; the app has none.
    """

    def wrap(handler: RawHandler) -> Callable[[Any, Any], None]:
        register(handler)

        def entry(event: Any, context: Any) -> None:
            handler(event, context)

        entry.__name__ = entry.__qualname__ = handler.__name__
        entry.__doc__ = handler.__doc__
        app.handler_map[handler.__name__] = entry
        return entry

    return wrap


@raw_event(app.on_s3_event(bucket=settings.upload_bucket, prefix=settings.upload_prefix, events=["s3:ObjectCreated:*"]))
def process_upload(event: Any, context: Any) -> None:
    deadline = Deadline.from_context(context, settings.deadline_margin_ms)  # record before Lambda's limit
    for upload in events.uploads(event):
        processing.handle_upload(pipeline(), upload, deadline)


@raw_event(app.on_s3_event(bucket=settings.upload_bucket, prefix=settings.upload_prefix, events=["s3:ObjectRemoved:*"]))
def remove_renditions(event: Any, context: Any) -> None:
    for gone in events.uploads(event):
        removal.remove_source(pipeline(), gone)


# batch_size 5: a redelivered batch skips what is already done (see reprocess.handle_messages).
# SQSEvent parses nothing up front: Chalice's own class is enough.
@app.on_sqs_message(queue=settings.reprocess_queue, batch_size=5)
def reprocess(event: SQSEvent) -> None:
    deadline = Deadline.from_context(event.context, settings.deadline_margin_ms)
    reprocessing.handle_messages(pipeline(), events.sqs_bodies(event.to_dict()), deadline)


@raw_event(app.on_sns_message(topic=settings.events_topic))
def notify(event: Any, context: Any) -> None:
    for message, subject in events.sns_messages(event):
        alerts.notify_people(pipeline(), message, subject)
