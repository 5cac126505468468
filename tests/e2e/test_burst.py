"""Under load nothing is lost: a burst of files dropped into the running local stack at once
(photos, copies of them under other names, hostile files) ends with exactly one outcome per
file, the right one, in the catalog, the outbox and the live log, and nothing left in any
queue. `make measure-local MEASURE_ARGS="--burst 300"` runs the same check on 300 files; this
one is smaller so `make test` stays quick on two cores."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import boto3
import pytest

from tests.conftest import CORPUS, DEV_ENV, FIXTURES
from tests.e2e.test_local_stack import Stack
from tools import burst
from tools.measure_local_stack import parse_batch_line, parse_image_line

pytestmark = pytest.mark.slow

BURST = 30
HOSTILE = 14


def _photos() -> list[Path]:
    big = [CORPUS / "photo_14mp_nikon_d3100.jpg", CORPUS / "photo_22mp_issue266.jpg"] if CORPUS.is_dir() else []
    small = [*sorted(FIXTURES.glob("orient_*.jpg")), FIXTURES / "alpha_paper_2048x1536.png", FIXTURES / "animated_loop3.gif"]
    return big + small


def test_a_burst_ends_with_one_outcome_per_file_and_empty_queues(tmp_path: Path) -> None:
    inbox, outbox, staging = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "staging"
    inbox.mkdir()
    expected = burst.make_burst(staging / "burst", BURST, _photos(), hostile=HOSTILE)
    assert len(expected) == BURST and set(expected.values()) == {burst.PROCESSED, burst.REJECTED}
    stack = Stack(tmp_path, inbox, outbox)
    try:
        ready = stack.wait_for_line("ready:", timeout=90)
        assert any(re.search(r"concurrency .* worker processes", line) for line in stack.lines), stack.lines
        (staging / "burst").rename(inbox / "burst")  # all at once, as a folder dropped in
        summary = parse_batch_line(stack.wait_for_line(f"batch done: {BURST} images", timeout=240))
        assert summary is not None

        aws = re.search(r"aws=(\S+)", ready)
        assert aws is not None
        clients = {name: boto3.client(name, endpoint_url=aws[1], region_name="us-east-1") for name in ("sqs", "dynamodb")}
        queues = burst.wait_for_empty_queues(clients["sqs"])
        items = burst.catalog_items(clients["dynamodb"], DEV_ENV["CATALOG_TABLE"], "uploads/burst/")
        check = burst.check_burst(expected, key_of=lambda name: f"burst/{name}", items=items, outbox=outbox, queues=queues)
        assert check.problems == [], "\n".join(check.problems)
        assert any(name.endswith("-dlq") for name in queues), "the dead-letter queues were looked at too"
        kinds = Counter(expected.values())
        assert check.catalog == {"processed": kinds[burst.PROCESSED], "rejected": kinds[burst.REJECTED]}

        # The live log: one line per file, with the outcome the catalog has.
        lines = [line for line in map(parse_image_line, stack.lines) if line is not None and line.key.startswith("uploads/burst/")]
        assert Counter(line.key for line in lines) == Counter(f"uploads/burst/{name}" for name in expected)
        assert all(line.status == expected[line.key.removeprefix("uploads/burst/")] for line in lines)
        print(f"burst of {BURST} files: {summary.count} in {summary.seconds:.1f} s, {summary.per_minute} images/min")
    finally:
        if stack.process.poll() is None:
            stack.process.terminate()
            stack.process.wait(60)
        shutil.rmtree(staging, ignore_errors=True)
