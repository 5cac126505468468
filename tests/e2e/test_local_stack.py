"""`python -m devstack run` (what `make run` starts) end to end, as a user meets it:
real moto server over HTTP, real photos dropped into an inbox folder, renditions read from
the outbox folder, the catalog and the alerts topic read through the emulator's API."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from PIL import Image

from chalicelib.keys import image_id_for
from tests.conftest import CORPUS, DEV_ENV, FIXTURES, ROOT

pytestmark = pytest.mark.slow

BAD_TEXT = b"Notes from the trip: remember to buy sunscreen.\n" * 20  # text saved as .jpg


class Stack:
    """The local stack in a subprocess; its console lines are collected as they come."""

    def __init__(self, tmp: Path, inbox: Path, outbox: Path, ports: tuple[str, str] = ("0", "0")) -> None:
        self.env = env = {
            **os.environ,
            # "0": the stack picks free ports and names them on its ready line
            "LOCAL_AWS_PORT": ports[0],
            "LOCAL_API_PORT": ports[1],
            "INBOX": str(inbox),
            "OUTBOX": str(outbox),
            "LOCAL_LOG_DIR": str(tmp / "local"),
            "STAGE": "dev",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no line starting with {prefix!r}; output so far:\n" + "\n".join(self.lines))

    def descendants(self) -> set[int]:
        """Every process below the stack (read from /proc: the children run in their own sessions)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = set(), {self.process.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _photos() -> list[Path]:
    if CORPUS.is_dir():
        return [CORPUS / "photo_14mp_nikon_d3100.jpg", CORPUS / "photo_8mp_iphone6.jpg"]
    return [FIXTURES / "alpha_paper_2048x1536.png", FIXTURES / "cmyk_channel_digital_image.jpg"]


def _wait_until(condition, timeout: float, what: str, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if stack.process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; console:\n" + "\n".join(stack.lines))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to check for leftover processes")
def test_inbox_to_outbox_catalog_alerts_and_clean_stop(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()  # an existing inbox is not seeded with the samples
    stack = Stack(tmp_path, inbox, outbox)
    try:
        ready = stack.wait_for_line("ready:", timeout=60)
        urls = dict(re.findall(r"(api|aws)=(\S+)", ready))
        assert set(urls) == {"api", "aws"}
        ports = (urls["aws"].rsplit(":", 1)[1], urls["api"].rsplit(":", 1)[1])
        # The CLI below gets run's own environment (LOCAL_AWS_PORT=0, not the port it picked):
        # it finds the stack through the record run left in LOCAL_LOG_DIR.
        clients = {name: boto3.client(name, endpoint_url=urls["aws"], region_name="us-east-1") for name in ("sqs", "sns", "dynamodb", "s3")}
        # Listen on the alerts topic the way a person's e-mail subscription would.
        alerts_arn = DEV_ENV["ALERTS_TOPIC_ARN"]
        tap = clients["sqs"].create_queue(QueueName="e2e-alerts-tap")["QueueUrl"]
        clients["sns"].subscribe(TopicArn=alerts_arn, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:e2e-alerts-tap")

        children = stack.descendants()
        assert len(children) >= 2, "the emulator and the API server run as child processes"

        # Prepared beside the inbox, then moved in at once (as `mv` or a file manager does):
        # the four land together, so they make one batch.
        staging = tmp_path / "staging"
        (staging / "trip").mkdir(parents=True)
        good = {}
        for photo in _photos():
            good[f"uploads/{photo.name}"] = photo
            shutil.copy(photo, staging / photo.name)
        shutil.copy(FIXTURES / "orient_portrait_6.jpg", staging / "trip" / "beach day.jpg")
        good["uploads/trip/beach day.jpg"] = FIXTURES / "orient_portrait_6.jpg"
        (staging / "broken.jpg").write_bytes(BAD_TEXT)
        for item in staging.iterdir():
            item.rename(inbox / item.name)

        rejected_note = outbox / "broken.jpg.rejected.txt"

        def finished() -> bool:
            done = sum(1 for line in stack.lines if re.match(r"^\[\s*\d+/\d+\]\s+processed\s", line))
            return done == len(good) and rejected_note.is_file()

        _wait_until(finished, 45, "every image's line in the live log", stack)

        # Every good image: a processed record whose renditions are all in the outbox, intact.
        for key in good:
            item = clients["dynamodb"].get_item(TableName=DEV_ENV["CATALOG_TABLE"], Key={"image_id": {"S": image_id_for(key)}})["Item"]
            assert item["status"]["S"] == "processed", item
            renditions = item["renditions"]["L"]
            assert len(renditions) >= 3
            for rendition in renditions:
                fields = rendition["M"]
                local = outbox / fields["key"]["S"].removeprefix("renditions/")
                # <path in the inbox>/<version>/<file>
                assert local.parent.parent == outbox / key.removeprefix("uploads/"), "outbox mirrors the inbox layout"
                assert local.stat().st_size == int(fields["bytes"]["N"])
                with Image.open(local) as image:
                    assert image.size == (int(fields["width"]["N"]), int(fields["height"]["N"]))
            line = next(line for line in stack.lines if f" {key} " in line)
            assert f"{len(renditions)} renditions" in line and re.search(r"\d+\.\d\d s$", line), line
        # The phone-style portrait (stored sideways, EXIF orientation 6) comes out upright.
        with Image.open(_rendition(outbox, "trip/beach day.jpg", "w320.jpg")) as upright:
            assert upright.width == 320 and upright.height > upright.width

        # The bad file: rejected with its reason, in the catalog, the outbox and the log.
        bad = clients["dynamodb"].get_item(TableName=DEV_ENV["CATALOG_TABLE"], Key={"image_id": {"S": image_id_for("uploads/broken.jpg")}})[
            "Item"
        ]
        assert bad["status"]["S"] == "rejected" and bad["error_code"]["S"] == "not_an_image"
        assert "not_an_image" in rejected_note.read_text()
        assert not (outbox / "broken.jpg").exists(), "a reject leaves no renditions"
        assert any("rejected" in line and "uploads/broken.jpg" in line and "not_an_image" in line for line in stack.lines)
        assert any(line.startswith("batch done: 4 images") for line in stack.lines), "\n".join(stack.lines)

        # The listing index the API uses holds both outcomes.
        listed = clients["dynamodb"].query(
            TableName=DEV_ENV["CATALOG_TABLE"],
            IndexName="by_updated",
            KeyConditionExpression="listing = :l",
            ExpressionAttributeValues={":l": {"S": "images"}},
        )["Items"]
        assert {i["source_key"]["S"] for i in listed} == {*good, "uploads/broken.jpg"}

        # The notifier told people about the rejection on the alerts topic.
        subjects: list[str] = []

        def alerted() -> bool:
            for message in clients["sqs"].receive_message(QueueUrl=tap, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                subjects.append(json.loads(message["Body"]).get("Subject", ""))
            return "Rejected upload: broken.jpg" in subjects

        _wait_until(alerted, 15, "the rejection alert", stack)

        # The API server answers (the app's routes are served by chalice local).
        try:
            with urllib.request.urlopen(urls["api"] + "/", timeout=5) as response:
                assert response.status < 500
        except urllib.error.HTTPError as exc:
            assert exc.code < 500

        # Another terminal: the CLI uploads to the running stack and reports on it.
        cli = [sys.executable, "-m", "devstack"]
        uploaded = subprocess.run(
            [*cli, "upload", str(FIXTURES / "orient_landscape_3.jpg")], cwd=ROOT, env=stack.env, capture_output=True, text=True, check=False
        )
        assert uploaded.returncode == 0 and "uploads/orient_landscape_3.jpg" in uploaded.stdout, uploaded.stderr
        _wait_until(lambda: _has_rendition(outbox, "orient_landscape_3.jpg", "thumbnail.jpg"), 20, "the CLI upload's renditions", stack)
        status = subprocess.run([*cli, "status"], cwd=ROOT, env=stack.env, capture_output=True, text=True, check=False)
        assert status.returncode == 0, status.stderr
        assert re.search(r"processed\s+4\b", status.stdout) and re.search(r"rejected\s+1\b", status.stdout), status.stdout
        assert f"local stack at {urls['aws']} (stage dev, found through " in status.stdout, status.stdout

        # Ctrl-C: everything stops, nothing is left running, the outbox stays.
        _interrupt(stack, children)
        assert rejected_note.is_file() and any(outbox.rglob("w320.webp"))
        assert not (tmp_path / "local" / "stack.json").exists(), "a stopped stack leaves no record to be found by"
    finally:
        _kill(stack)

    # Restart at once on the same ports (the last run's connections linger in TIME_WAIT):
    # only what has no outputs yet is uploaded again.
    (inbox / "after restart.jpg").write_bytes((FIXTURES / "orient_landscape_2.jpg").read_bytes())
    stack = Stack(tmp_path, inbox, outbox, ports)
    try:
        stack.wait_for_line("ready:", timeout=60)
        assert any("(1 file(s) without outputs yet)" in line for line in stack.lines), stack.lines
        _wait_until(lambda: _has_rendition(outbox, "after restart.jpg", "thumbnail.jpg"), 30, "the new file's renditions", stack)
        stack.wait_for_line("batch done: 1 image ", timeout=10)
        processed = [line for line in stack.lines if re.match(r"^\[\s*\d+/\d+\]\s+processed\s", line)]
        assert len(processed) == 1 and "uploads/after restart.jpg" in processed[0], stack.lines
        _interrupt(stack, stack.descendants())
    finally:
        _kill(stack)


def _interrupt(stack: Stack, children: set[int]) -> None:
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(30) == 0, "\n".join(stack.lines)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "child processes outlived the stack"


def _kill(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.kill()
        stack.process.wait(10)


def _has_rendition(outbox: Path, source: str, name: str) -> bool:
    """Whether `./outbox/<source>/<version>/<name>` exists (any version)."""
    return any((outbox / source).glob(f"*/{name}"))


def _rendition(outbox: Path, source: str, name: str) -> Path:
    [found] = (outbox / source).glob(f"*/{name}")  # one version: superseded ones are removed
    return found
