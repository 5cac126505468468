"""The local stack's folders: the inbox watcher, first-run seeding, and the live log that
turns events and mirrored renditions into one line per image."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import pytest

from chalicelib.settings import Settings
from devstack.live import LiveLog, has_outputs, note_path
from devstack.stack import SAMPLES_DIR, seed_inbox
from devstack.watcher import InboxWatcher, files_in, upload_key
from tests.conftest import FIXTURES
from tools.measure_local_stack import BatchLine, ImageLine, images_per_minute, latency_split, parse_batch_line, parse_image_line

SETTINGS = Settings(upload_bucket="in-bucket", processed_bucket="out-bucket", catalog_table="catalog", events_topic="events")


def _wait_for(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_inbox_files_are_handed_over_once_complete_with_their_folder(tmp_path: Path) -> None:
    (tmp_path / ".hidden").write_text("x")
    handed: list[Path] = []
    seen: list[Path] = []
    watcher = InboxWatcher(tmp_path, lambda path, at: handed.append(path), lambda path, at: seen.append(path))
    watcher.start()
    try:
        (tmp_path / "album").mkdir()
        # shutil.copy2 closes the file, then sets its mode and times: still one upload.
        shutil.copy2(FIXTURES / "orient_landscape_1.jpg", tmp_path / "album" / "one.jpg")
        (tmp_path / "album" / "two.jpg.part").write_bytes(b"partial download")
        _wait_for(lambda: handed)
        time.sleep(0.8)  # longer than two settle times: a second hand-over would show
        assert [p.relative_to(tmp_path) for p in handed] == [Path("album/one.jpg")]
        assert seen == handed
        # Changed content is handed over again.
        (tmp_path / "album" / "one.jpg").write_bytes(b"new content")
        _wait_for(lambda: len(handed) == 2)
        assert len(handed) == 2
    finally:
        watcher.stop()
    assert [upload_key("uploads/", tmp_path, p) for p in files_in(tmp_path)] == ["uploads/album/one.jpg"]


def test_first_run_seeds_the_samples_and_never_touches_an_existing_inbox(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    assert seed_inbox(inbox)
    seeded = {p.relative_to(inbox) for p in files_in(inbox)}
    assert seeded == {p.relative_to(SAMPLES_DIR) for p in files_in(SAMPLES_DIR)} - {Path("SOURCES.md")}
    assert len(seeded) >= 3
    (inbox / "landscape.jpg").unlink()
    assert not seed_inbox(inbox)
    assert not (inbox / "landscape.jpg").exists()


def test_restart_knows_which_inbox_files_already_have_outputs(tmp_path: Path) -> None:
    (tmp_path / "shop" / "shoe.jpg").mkdir(parents=True)
    assert not has_outputs(SETTINGS, tmp_path, "uploads/shop/shoe.jpg")  # an empty folder is no output
    (tmp_path / "shop" / "shoe.jpg" / "0123456789abcdef").mkdir()
    assert not has_outputs(SETTINGS, tmp_path, "uploads/shop/shoe.jpg")  # nor an empty version folder
    (tmp_path / "shop" / "shoe.jpg" / "0123456789abcdef" / "w320.jpg").write_bytes(b"x")  # <source>/<version>/<file>
    assert has_outputs(SETTINGS, tmp_path, "uploads/shop/shoe.jpg")
    assert note_path(SETTINGS, tmp_path, "uploads/bad.jpg", ".rejected.txt") == tmp_path / "bad.jpg.rejected.txt"
    assert not has_outputs(SETTINGS, tmp_path, "uploads/bad.jpg")
    (tmp_path / "bad.jpg.rejected.txt").write_text("rejected")
    assert has_outputs(SETTINGS, tmp_path, "uploads/bad.jpg")
    # A key that cannot be mirrored safely maps inside the outbox, never outside it.
    odd = note_path(SETTINGS, tmp_path, "uploads/a/../../etc/passwd", ".rejected.txt")
    assert odd.resolve().is_relative_to(tmp_path) and "_by-id" in odd.parts


def _envelope(body: dict[str, object]) -> dict[str, object]:
    return {"Type": "Notification", "Message": json.dumps(body)}


def test_live_log_prints_an_image_when_its_last_rendition_is_in_the_outbox(tmp_path: Path) -> None:
    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path)
    start = time.time()
    live.landed("uploads/a.jpg", start)
    live.landed("uploads/bad.jpg", start)
    live.landed("uploads/a.jpg", start + 5)  # the same file seen again while in flight: counted once
    keys = ["renditions/a.jpg/thumbnail.jpg", "renditions/a.jpg/w320.jpg"]
    live.mirrored(keys[0], start + 1, True)  # may arrive before the event
    live.event(
        _envelope(
            {"type": "image.processed", "source_key": "uploads/a.jpg", "renditions": [{"key": k} for k in keys], "renditions_bytes": 2048}
        )
    )
    assert out.getvalue() == "", "not done before every rendition is in the outbox"
    live.mirrored(keys[1], start + 2, True)
    live.event(_envelope({"type": "image.rejected", "source_key": "uploads/bad.jpg", "error_code": "not_an_image", "error": "text"}))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["[1/2]", "processed", "uploads/a.jpg", "2", "renditions", "2.0", "KB", "2.00", "s"]
    assert lines[1].startswith("[2/2]   rejected   uploads/bad.jpg  not_an_image: text")
    assert lines[2].startswith("batch done: 2 images in ") and "(1 processed, 1 rejected, 0 failed), 2 renditions" in lines[2]
    assert "not_an_image: text" in (tmp_path / "bad.jpg.rejected.txt").read_text()
    # `make measure-local` reads its figures from these lines.
    assert parse_image_line(lines[0]) == ImageLine("processed", "uploads/a.jpg", 2.0)
    rejected = parse_image_line(lines[1])
    assert rejected is not None and (rejected.status, rejected.key) == ("rejected", "uploads/bad.jpg")
    assert parse_image_line(lines[2]) is None
    batch = parse_batch_line(lines[2])
    assert batch is not None and batch.count == 2 and batch.per_minute is not None and batch.per_minute > 0
    # A later good version of the same key clears the rejection note.
    live.event(_envelope({"type": "image.processed", "source_key": "uploads/bad.jpg", "renditions": [], "renditions_bytes": 0}))
    assert not (tmp_path / "bad.jpg.rejected.txt").exists()


def _processed(live: LiveLog, key: str, mirrored_at: float) -> None:
    rendition = f"renditions/{key.removeprefix('uploads/')}/w320.jpg"
    live.mirrored(rendition, mirrored_at, True)
    live.event(_envelope({"type": "image.processed", "source_key": key, "renditions": [{"key": rendition}], "renditions_bytes": 1024}))


def test_a_batch_lasts_from_its_first_landing_to_its_last_finish(tmp_path: Path) -> None:
    """The image reported last need not be the one that finished last: its event can come
    after a slower image's. The batch line once said `2 images in 0.7 s` right after an image
    that took 2.70 s, and `make measure-local` took its images/min from that line."""
    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path)
    start = 1_000_000.0
    live.landed("uploads/slow.jpg", start + 0.3)
    live.landed("uploads/quick.jpg", start)  # seen second, landed first
    _processed(live, "uploads/slow.jpg", start + 3.0)  # finished last, reported first
    _processed(live, "uploads/quick.jpg", start + 1.0)
    lines = out.getvalue().splitlines()
    images = [parse_image_line(line) for line in lines[:2]]
    assert images == [ImageLine("processed", "uploads/slow.jpg", 2.7), ImageLine("processed", "uploads/quick.jpg", 1.0)]
    batch = parse_batch_line(lines[2])
    assert batch == BatchLine(2, 3.0, 40.0), lines[2]
    assert images_per_minute(batch, [i for i in images if i]) == 40.0
    # The tool refuses a batch line shorter than one of its own images (the old figure).
    with pytest.raises(ValueError, match=r"one of its images took 2\.70 s"):
        images_per_minute(BatchLine(2, 0.7, 171.4), [i for i in images if i])


def test_measure_local_never_reports_a_negative_share_for_the_stack() -> None:
    """It printed "the local stack around it: median -0.11 s": the handler returns after its
    last rendition is in the outbox, so its duration can exceed the inbox-to-outbox time."""
    assert latency_split([2.5, 2.7, 2.6], [2.0, 2.1, 2.0]).endswith("relay, outbox mirror): median 0.60 s")
    overlapping = latency_split([1.91], [2.02])
    assert "median 2.02 s" in overlapping and "-0." not in overlapping and "around it" not in overlapping


def test_a_batch_whose_last_file_vanished_ends_at_its_last_finish(tmp_path: Path) -> None:
    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path)
    start = 1_000_000.0
    live.landed("uploads/a.jpg", start)
    live.landed("uploads/partial.jpg", start + 0.5)
    _processed(live, "uploads/a.jpg", start + 2.0)
    live.gone("uploads/partial.jpg")  # deleted from the inbox before it was uploaded
    assert out.getvalue().splitlines()[-1].startswith("batch done: 1 image in 2.0 s (1 processed")


def test_a_parked_upload_is_reported_with_its_reason_where_the_user_looks(tmp_path: Path) -> None:
    from devstack.relay import DeadLetter
    from devstack.resources import Route

    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path)
    live.landed("uploads/shop/shoe.jpg", time.time())
    route = Route(
        "process_upload", "s3", "s3://in-bucket", "q", "url", "arn", "q-dlq", "dlq-url", "image-pipeline-dev-process_upload", 2048, 120
    )
    for _ in range(3):  # the first try and Lambda's two retries each publish image.failed
        live.event(_envelope({"type": "image.failed", "source_key": "uploads/shop/shoe.jpg", "error": "ClientError: SlowDown"}))
    event = {"Records": [{"s3": {"bucket": {"name": "in-bucket"}, "object": {"key": "uploads/shop/shoe.jpg"}}}]}
    live.dead_letter(DeadLetter(route, event, "ClientError: SlowDown", 3))
    *attempts, line, summary = out.getvalue().splitlines()
    assert [a.split("(", 1)[1] for a in attempts] == [
        "attempt 1 of 3, retrying)",
        "attempt 2 of 3, retrying)",
        "attempt 3 of 3, giving up)",
    ]
    assert line.startswith("[1/1]   FAILED     uploads/shop/shoe.jpg  ClientError: SlowDown (parked in q-dlq;")
    assert "(0 processed, 0 rejected, 1 failed)" in summary
    note = (tmp_path / "shop" / "shoe.jpg.failed.txt").read_text()
    assert "failed after 3 attempts: ClientError: SlowDown" in note and "q-dlq" in note


def test_a_file_that_vanishes_before_it_is_complete_is_not_waited_for(tmp_path: Path) -> None:
    handed: list[Path] = []
    gone: list[Path] = []
    watcher = InboxWatcher(tmp_path, lambda path, at: handed.append(path), on_gone=gone.append)
    watcher.start()
    try:
        probe = tmp_path / "4913"  # vim writes and removes such a file to test the folder
        with probe.open("wb") as handle:  # never closed before it goes: no "complete" event
            handle.write(b"x")
            handle.flush()
            time.sleep(0.1)
            probe.unlink()
        _wait_for(lambda: gone)
    finally:
        watcher.stop()
    assert gone == [probe] and handed == []

    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path / "outbox")
    live.landed("uploads/a.jpg", time.time())
    live.landed("uploads/4913", time.time())
    live.gone("uploads/4913")
    live.event(_envelope({"type": "image.processed", "source_key": "uploads/a.jpg", "renditions": [], "renditions_bytes": 0}))
    line, summary = out.getvalue().splitlines()
    assert line.startswith("[1/1]   processed  uploads/a.jpg")
    assert summary.startswith("batch done: 1 image in ")


def test_status_names_a_missing_resource_instead_of_calling_the_stack_unreachable() -> None:
    from botocore.exceptions import ClientError

    from devstack.client import _or_error

    def missing(bucket: str) -> int:
        raise ClientError({"Error": {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"}}, "ListObjectsV2")

    assert _or_error(lambda bucket: 5, "b", unit=" objects") == "5 objects"
    assert _or_error(missing, "b", unit=" objects") == "? (NoSuchBucket: The specified bucket does not exist)"


def test_a_dead_letter_waits_for_the_live_log_like_every_other_input(tmp_path: Path) -> None:
    """dead_letter runs on a relay thread while the event and outbox taps run on theirs: it
    must take the live log's lock, or two finishing images can both close (and print) a batch."""
    import threading

    from devstack.relay import DeadLetter
    from devstack.resources import Route

    out = io.StringIO()
    live = LiveLog(out, SETTINGS, tmp_path)
    live.landed("uploads/a.jpg", time.time())
    route = Route("process_upload", "s3", "s3://in-bucket", "q", "url", "arn", "q-dlq", "dlq-url", "fn", 2048, 120)
    event = {"Records": [{"s3": {"bucket": {"name": "in-bucket"}, "object": {"key": "uploads/a.jpg"}}}]}
    parked = threading.Thread(target=live.dead_letter, args=(DeadLetter(route, event, "boom", 3),))
    with live._lock:  # another thread is mid-update
        parked.start()
        parked.join(0.3)
        assert live.finished == [], "dead_letter changed the live log without its lock"
    parked.join(5)
    assert out.getvalue().splitlines()[0].startswith("[1/1]   FAILED     uploads/a.jpg  boom")


def test_the_outbox_tap_keeps_going_when_one_delete_fails() -> None:
    """A delete the emulator refuses once must not end the tap's thread: every later
    rendition would silently stop reaching ./outbox for the rest of the session."""
    from typing import Any

    from devstack.outbox import QueueTap

    class Sqs:
        def __init__(self) -> None:
            self.queue = [{"Body": json.dumps({"n": n}), "ReceiptHandle": f"r{n}"} for n in (1, 2)]
            self.deletes = 0

        def receive_message(self, **_: Any) -> dict[str, Any]:
            if not self.queue:
                time.sleep(0.02)
                return {}
            return {"Messages": [self.queue.pop(0)]}

        def delete_message(self, **_: Any) -> None:
            self.deletes += 1
            if self.deletes == 1:
                raise ConnectionError("emulator busy")

    seen: list[object] = []
    tap = QueueTap(Sqs(), "url", lambda body: seen.append(body["n"]), "test-tap")
    tap.start()
    _wait_for(lambda: len(seen) == 2, timeout=3)
    tap.stop()
    tap.join()
    assert seen == [1, 2]


def test_measure_local_stops_a_stack_that_ignores_ctrl_c() -> None:
    """`make measure-local` ends its stack with Ctrl-C; one that does not stop in time is
    killed, not left running with its ports and emulator (it raised TimeoutExpired)."""
    import subprocess
    import sys

    from tools.measure_local_stack import StackRun

    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    run = StackRun.__new__(StackRun)  # the process only: no `make run`
    run.process = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert run.process.stdout is not None and run.process.stdout.readline() == "up\n"
        run.stop(timeout=0.5)
        assert run.process.poll() is not None
    finally:
        if run.process.poll() is None:
            run.process.kill()
        run.process.wait()
        run.process.stdout.close()  # type: ignore[union-attr]
