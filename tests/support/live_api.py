"""A live API on loopback for tests that talk HTTP: moto's standalone server for AWS and
`chalice local` (dev stage) pointed at it with AWS_ENDPOINT_URL. No S3 notifications reach
a processor here (moto does not invoke Lambdas): this serves the API routes only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from tests.conftest import DEV_ENV, ROOT, create_catalog_table

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class LiveApi:
    api: str  # http://127.0.0.1:<port>
    aws: str  # the moto server's endpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:  # not listening yet, or busy starting
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def seed(aws: str, count: int) -> list[str]:
    """`count` catalog records (every third one rejected) with their rendition objects, so
    the read and delete routes have something to find. Returns the image ids."""
    from chalicelib.catalog import DynamoCatalog
    from chalicelib.keys import image_id_for
    from chalicelib.records import ImageRecord

    kwargs = {"endpoint_url": aws, "region_name": "us-east-1"}
    s3 = boto3.client("s3", **kwargs)
    catalog = DynamoCatalog(boto3.client("dynamodb", **kwargs), DEV_ENV["CATALOG_TABLE"])
    ids = []
    for n in range(count):
        key = f"uploads/seed/photo-{n}.jpg"
        rejected = n % 3 == 2
        renditions = []
        if not rejected:
            rkey = f"renditions/seed/photo-{n}.jpg/thumbnail.jpg"
            s3.put_object(Bucket=DEV_ENV["PROCESSED_BUCKET"], Key=rkey, Body=b"\xff\xd8 not really a jpeg", ContentType="image/jpeg")
            renditions = [{"preset": "thumbnail", "key": rkey, "format": "JPEG", "width": 150, "height": 150, "bytes": 22}]
        catalog.put(
            ImageRecord.from_dict(
                {
                    "image_id": image_id_for(key),
                    "source_bucket": DEV_ENV["UPLOAD_BUCKET"],
                    "source_key": key,
                    "status": "rejected" if rejected else "processed",
                    "renditions": renditions,
                    "listing": "images",
                    "updated_at": f"2026-01-01T00:00:{n:02d}.000+00:00",
                    "bytes": 1000,
                    **(
                        {"error_code": "not_an_image", "error": "not an image"}
                        if rejected
                        else {"format": "JPEG", "width": 600, "height": 400}
                    ),
                }
            )
        )
        ids.append(image_id_for(key))
    return ids


@contextmanager
def live_api(records: int = 0) -> Iterator[LiveApi]:
    moto_port, api_port = free_port(), free_port()
    aws = f"http://127.0.0.1:{moto_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": aws, "PYTHONUNBUFFERED": "1"}
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    chalice: subprocess.Popen[bytes] | None = None
    try:
        _wait(f"{aws}/moto-api/", moto, "moto_server")
        kwargs = {"endpoint_url": aws, "region_name": "us-east-1"}
        s3 = boto3.client("s3", **kwargs)
        for bucket in (DEV_ENV["UPLOAD_BUCKET"], DEV_ENV["PROCESSED_BUCKET"]):
            s3.create_bucket(Bucket=bucket)
        create_catalog_table(boto3.client("dynamodb", **kwargs), DEV_ENV["CATALOG_TABLE"])
        boto3.client("sns", **kwargs).create_topic(Name=DEV_ENV["EVENTS_TOPIC"])
        seed(aws, records)
        chalice = subprocess.Popen(
            [str(BIN / "chalice"), "local", "--stage", "dev", "--host", "127.0.0.1", "--port", str(api_port), "--no-autoreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        api = f"http://127.0.0.1:{api_port}"
        _wait(f"{api}/health", chalice, "chalice local")
        health = requests.get(f"{api}/health", timeout=5).json()
        assert health["status"] == "ok", json.dumps(health)
        yield LiveApi(api=api, aws=aws)
    finally:
        if chalice is not None:
            _stop(chalice)
        _stop(moto)
