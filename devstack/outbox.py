"""The processed bucket -> ./outbox, driven by the bucket's own notifications.

Every rendition written under OUTPUT_PREFIX is copied to `outbox/<key minus OUTPUT_PREFIX>`
(so `inbox/shop/shoe.jpg` gives `outbox/shop/shoe.jpg/w320.webp`), and every rendition
removed (an earlier version's leftovers, a removed source) is removed from the outbox too.
Files are written to a temporary name and renamed, so the outbox never holds half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

log = logging.getLogger("image_pipeline.local.outbox")


class QueueTap:
    """A thread that long-polls one SQS queue and hands each message body (parsed JSON) to
    `on_message`; the message is deleted afterwards, or left for a retry if that raised."""

    def __init__(self, sqs: Any, queue_url: str, on_message: Callable[[Mapping[str, Any]], None], name: str, wait_s: int = 1) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._on_message = on_message
        self._wait_s = wait_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop once the queue is empty (see `join`): on Ctrl-C the
        renditions of the last images still reach the outbox."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(self._wait_s + 30)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if stopping else self._wait_s
                ).get("Messages", [])
            except Exception:
                if stopping:
                    return
                log.warning("receiving from %s failed", self._queue_url, exc_info=True)
                self._stop.wait(1)
                continue
            if stopping and not messages:
                return
            for message in messages:
                try:
                    body = json.loads(message["Body"])
                    self._on_message(body if isinstance(body, dict) else {})
                except Exception:
                    log.exception("could not handle a message from %s", self._queue_url)
                    continue
                try:
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
                except Exception:  # it comes back and is handled again: a repeated file or line at worst
                    log.warning("could not delete a message from %s", self._queue_url, exc_info=True)


def stop_all(taps: list[QueueTap]) -> None:
    """Drain and stop several taps at once."""
    for tap in taps:
        tap.stop()
    for tap in taps:
        tap.join()


class OutboxMirror:
    def __init__(self, s3: Any, outbox: Path, output_prefix: str, on_change: Callable[[str, float, bool], None]) -> None:
        self._s3 = s3
        self._outbox = outbox.resolve()
        self._prefix = output_prefix
        self._on_change = on_change

    def path_for(self, key: str) -> Path | None:
        """Where a rendition key lives in the outbox; None if it would land outside it."""
        if not key.startswith(self._prefix) or key.endswith("/"):
            return None
        path = (self._outbox / key[len(self._prefix) :]).resolve()
        return path if path.is_relative_to(self._outbox) and path != self._outbox else None

    def on_notification(self, body: Mapping[str, Any]) -> None:
        """One S3 notification (S3 -> SQS body); `s3:TestEvent` carries no records."""
        for record in body.get("Records", []):
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
            path = self.path_for(key)
            if path is None:
                log.warning("not mirroring %s: outside the outbox", key)
                continue
            if record.get("eventName", "").startswith("ObjectRemoved"):
                self._remove(path)
                self._on_change(key, time.time(), False)
            elif self._download(bucket, key, path):
                self._on_change(key, time.time(), True)

    def _download(self, bucket: str, key: str, path: Path) -> bool:
        try:
            data = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False  # removed again before we got to it; its removal follows
            raise
        write_atomically(path, data)
        return True

    def _remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        # Drop folders the removal left empty, never the outbox itself.
        parent = path.parent
        while parent != self._outbox and parent.is_relative_to(self._outbox):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
