"""Every outcome writes exactly one structured line, in Embedded Metric Format, with names
that match the documented (and Terraform-filtered) metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import observe, service
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.storage import MemoryObjectStore
from tests.conftest import ROOT, fixture_bytes
from tests.unit.test_service import make_pipeline

REQUIRED = {"service", "event", "status", "image_id", "key"}


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith("{") and line.endswith("}") for line in out), "every stdout line is one JSON object"
    return [json.loads(line) for line in out]


def every_outcome(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The log lines of a processed, a rejected, a failed, an ignored and a deleted image,
    with SNS down throughout (so `publish.failed` lines too)."""

    class FlakyGet(MemoryObjectStore):
        def get(self, source: Any) -> bytes:
            if source.key.endswith("flaky.jpg"):
                raise ConnectionError("read timed out")
            return super().get(source)

    class DeadNotifier(MemoryNotifier):
        def publish(self, *a: Any, **kw: Any) -> str:
            raise ConnectionError("SNS is down")

    p = make_pipeline(store=FlakyGet(), notifier=DeadNotifier())
    store = p.store
    assert isinstance(store, MemoryObjectStore)
    for key, data in (
        ("uploads/ok.jpg", fixture_bytes("orient_landscape_1.jpg")),
        ("uploads/bad.jpg", b"nope"),
        ("uploads/flaky.jpg", b"x"),
    ):
        store.add("up", key, data)
    service.process_upload(p, Upload("up", "uploads/ok.jpg", sequencer="01"))
    service.process_upload(p, Upload("up", "uploads/bad.jpg", sequencer="01"))
    with pytest.raises(ConnectionError):
        service.process_upload(p, Upload("up", "uploads/flaky.jpg", sequencer="01"))
    service.process_upload(p, Upload("up", "elsewhere/x.jpg", sequencer="01"))
    store.remove("up", "uploads/ok.jpg")
    service.remove_source(p, Upload("up", "uploads/ok.jpg", "ObjectRemoved:Delete", sequencer="02"))

    return lines(capsys)


def test_one_line_per_outcome_with_stage_durations_bytes_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = [line for line in every_outcome(capsys) if line["event"] != "publish.failed"]
    assert [line["event"] for line in outcomes] == ["image.processed", "image.rejected", "image.failed", "image.ignored", "image.deleted"]
    for line in outcomes:
        assert line.keys() >= REQUIRED - ({"image_id"} if line["event"] == "image.ignored" else set()), line
    processed, rejected, failed, _, deleted = outcomes
    assert {"read_ms", "render_ms", "write_ms", "record_ms", "duration_ms"} <= processed.keys()
    assert processed["bytes"] == len(fixture_bytes("orient_landscape_1.jpg")) and processed["bytes_written"] > 0
    assert rejected["error_code"] == "not_an_image" and rejected["bytes"] == 4 and "read_ms" in rejected
    assert failed["error_code"] == "internal_error" and failed["bytes"] == 1 and "ConnectionError" in failed["error"]
    assert deleted["renditions_removed"] >= 3
    for line in outcomes:
        if "_aws" not in line:
            continue
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert (
            directive["Namespace"] == "ImagePipeline" and directive["Dimensions"] == [["Service"]] and line["Service"] == "image-pipeline"
        )
        for metric in directive["Metrics"]:
            assert observe.METRICS[metric["Name"]] == metric["Unit"]
            assert isinstance(line[metric["Name"]], int | float)
    assert processed["ImagesProcessed"] == 1 and rejected["ImagesRejected"] == 1 and failed["ImagesFailed"] == 1
    assert deleted["ImagesDeleted"] == 1


def test_unknown_metric_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"observe\.METRICS"):
        observe.emit({"event": "x"}, {"ImagesProcesed": (1, "Count")})


def test_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Logs and metrics") :]
    for name in observe.METRICS:
        assert f"`{name}`" in section, f"README 'Logs and metrics' does not list {name}"
