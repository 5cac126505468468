"""Every outcome writes exactly one structured line, in Embedded Metric Format, with names
that match the documented (and Terraform-filtered) metrics."""

from __future__ import annotations

import pytest

from chalicelib import observe
from tests.conftest import ROOT, fixture_bytes
from tests.support.outcomes import every_outcome

REQUIRED = {"service", "event", "status", "image_id", "key"}


def test_one_line_per_outcome_with_stage_durations_bytes_and_metrics() -> None:
    lines = [line for line in every_outcome() if line["event"] != "publish.failed"]
    outcomes = [line for line in lines if line.get("error_code") != "malformed_event"]
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


def test_every_malformed_event_is_counted_once() -> None:
    """Dropped events are not silent: each bad record's line carries EventsMalformed = 1 in
    EMF (the metric the malformed-events alarm watches), and no other line carries it."""
    lines = [line for line in every_outcome() if line["event"] != "publish.failed"]
    malformed = [line for line in lines if line.get("error_code") == "malformed_event"]
    assert [line["event"] for line in malformed] == ["image.ignored", "image.ignored", "image.ignored", "reprocess.invalid"]
    for line in malformed:
        assert line["status"] == "ignored" and (line.get("reason") or line.get("error")), line
        assert line["EventsMalformed"] == 1 and line["Service"] == "image-pipeline", line
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive == {
            "Namespace": "ImagePipeline",
            "Dimensions": [["Service"]],
            "Metrics": [{"Name": "EventsMalformed", "Unit": "Count"}],
        }
    foreign = malformed[2]
    assert (foreign["bucket"], foreign["key"]) == ("someone-else", "uploads/ok.jpg") and "UPLOAD_BUCKET" in foreign["reason"]
    assert not [line for line in lines if "EventsMalformed" in line and line not in malformed]


def test_unknown_metric_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"observe\.METRICS"):
        observe.emit({"event": "x"}, {"ImagesProcesed": (1, "Count")})


def test_docs_list_every_metric() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    section = page[page.index("## Logs and metrics") :]
    for name in observe.METRICS:
        assert f"`{name}`" in section, f"docs/operations.md 'Logs and metrics' does not list {name}"
