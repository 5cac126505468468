"""Every outcome writes exactly one structured line, in Embedded Metric Format, with names
that match the documented (and Terraform-filtered) metrics."""

from __future__ import annotations

import json
import re
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


def _matches(pattern: str, line: dict[str, Any]) -> bool:
    """CloudWatch Logs JSON filter patterns of the form `{ $.a = "x" && $.b = * }`."""
    for term in pattern.strip().strip("{}").split("&&"):
        field, _, wanted = (part.strip() for part in term.partition("="))
        value = line.get(field.removeprefix("$."))
        if value is None or (wanted != "*" and str(value) != wanted.strip('"')):
            return False
    return True


def test_terraform_metric_filters_match_the_lines_the_app_writes(capsys: pytest.CaptureFixture[str]) -> None:
    """The alarms feed on metric filters over these log lines (infra/monitoring.tf): each
    filter must match a line the app really writes, and take a number from it."""
    monitoring = ROOT / "infra" / "monitoring.tf"
    if not monitoring.is_file():
        pytest.skip("infra/monitoring.tf is not in this tree")
    filters = re.findall(r'^\s*(\w+)\s*=\s*\{\s*pattern\s*=\s*"((?:[^"\\]|\\.)*)",\s*value\s*=\s*"([^"]*)"', monitoring.read_text(), re.M)
    assert len(filters) >= 4, "the log_metrics block of infra/monitoring.tf was not found"
    written = every_outcome(capsys)
    for name, pattern, value in filters:
        matched = [line for line in written if _matches(pattern.replace('\\"', '"'), line)]
        assert matched, f"metric filter {name} ({pattern}) matches no line the app writes"
        for line in matched:
            number = 1 if value == "1" else line.get(value.removeprefix("$."))
            assert isinstance(number, int | float), f"{name}: {value} is not a number in {line}"
