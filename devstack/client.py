"""`upload` and `status`: drive a running local stack from another terminal.

They find the stack through the record `run` leaves in LOCAL_LOG_DIR (running.py), so a
stack on other ports than the defaults is found too; LOCAL_AWS_PORT names one explicitly."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.settings import LocalSettings, Settings
from devstack import running
from devstack.stack import apply_environment, local_environment, stage_config, upload_file
from devstack.watcher import files_in


class NoStack(RuntimeError):
    pass


def _connect(local: LocalSettings) -> Settings:
    try:  # a quick look first: boto3 would retry a refused connection for seconds
        with urllib.request.urlopen(f"{local.endpoint_url}/moto-api/", timeout=3):  # noqa: S310 - loopback URL we built
            pass
    except urllib.error.HTTPError:
        pass  # something answers
    except OSError as exc:
        raise NoStack(str(exc)) from None
    apply_environment(local_environment(stage_config(local.stage, local), local.endpoint_url))
    return Settings.from_env()


def _unreachable(local: LocalSettings, exc: Exception) -> int:
    record = running.record_path(local)
    print(
        f"error: no local stack answers at {local.endpoint_url} ({exc}). Start it with `make run`. "
        f"A stack started on other ports is found through {record}, which it writes once ready: run this "
        "command from the same folder with the same LOCAL_LOG_DIR, or name its emulator's port: LOCAL_AWS_PORT=<port> "
        "(its ready line says aws=http://127.0.0.1:<port>).",
        file=sys.stderr,
    )
    return 1


def upload(local: LocalSettings, paths: list[Path]) -> int:
    """Files go to UPLOAD_PREFIX + their name (inbox files keep their inbox path); a folder's
    files keep their path below the folder's parent."""
    local, _ = running.find(local)
    try:
        settings = _connect(local)
    except NoStack as exc:
        return _unreachable(local, exc)
    s3 = aws.client("s3", settings.region)
    inbox = local.inbox.resolve()
    planned: list[tuple[Path, str]] = []
    for given in paths:
        path = given.resolve()
        if path.is_dir():
            planned += [(file, settings.upload_prefix + file.relative_to(path.parent).as_posix()) for file in files_in(path)]
        elif path.is_file():
            relative = path.relative_to(inbox) if path.is_relative_to(inbox) else Path(path.name)
            planned.append((path, settings.upload_prefix + relative.as_posix()))
        else:
            print(f"error: {given} is not a file or folder", file=sys.stderr)
            return 2
    for path, key in planned:
        try:
            upload_file(s3, settings.upload_bucket, key, path)
        except BotoCoreError as exc:
            return _unreachable(local, exc)
        except (ClientError, S3UploadFailedError) as exc:
            # The stack answered but refused (its bucket was removed, ...): say so, not "unreachable".
            print(f"error: could not upload {path} to s3://{settings.upload_bucket}/{key}: {exc}", file=sys.stderr)
            return 1
        print(f"uploaded s3://{settings.upload_bucket}/{key}")
    return 0


def status(local: LocalSettings) -> int:
    local, record = running.find(local)
    try:
        settings = _connect(local)
    except NoStack as exc:
        return _unreachable(local, exc)
    ddb, sqs, s3 = (aws.client(name, settings.region) for name in ("dynamodb", "sqs", "s3"))
    try:
        found = f", found through {record}" if record else ""
        print(f"local stack at {local.endpoint_url} (stage {local.stage}{found})")
        print("catalog:")
        for state in ("processed", "rejected", "failed"):
            print(f"  {state:<10} {_or_error(_count, ddb, settings.catalog_table, 'by_status', 'status', state)}")
        print("buckets:")
        for bucket in (settings.upload_bucket, settings.processed_bucket):
            print(f"  {bucket:<40} {_or_error(_objects, s3, bucket, unit=' objects')}")
        print("queues (waiting / in flight):")
        for url in sqs.list_queues().get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            name = url.rsplit("/", 1)[-1]
            flag = "  <- dead letters" if name.endswith("-dlq") and attributes["ApproximateNumberOfMessages"] != "0" else ""
            print(f"  {name:<52} {attributes['ApproximateNumberOfMessages']} / {attributes['ApproximateNumberOfMessagesNotVisible']}{flag}")
    except (BotoCoreError, ClientError) as exc:
        return _unreachable(local, exc)
    return 0


def _or_error(read: Callable[..., int], *args: Any, unit: str = "") -> str:
    """One figure of the report, or why it is missing (a resource removed by hand, ...)."""
    try:
        return f"{read(*args)}{unit}"
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return f"? ({error.get('Code', 'error')}: {error.get('Message', exc)})"


def _count(ddb: Any, table: str, index: str, key: str, value: str) -> int:
    pages = ddb.get_paginator("query").paginate(
        TableName=table,
        IndexName=index,
        KeyConditionExpression="#k = :v",
        ExpressionAttributeNames={"#k": key},
        ExpressionAttributeValues={":v": {"S": value}},
        Select="COUNT",
    )
    return sum(int(page["Count"]) for page in pages)


def _objects(s3: Any, bucket: str) -> int:
    return sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
