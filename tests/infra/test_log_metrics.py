"""The metric filters in infra/monitoring.tf match the outcome lines the app really writes
(the service, through chalicelib/observe.py), and the alarms and the dashboard use only
metrics those filters publish. No terraform needed: the small subset of CloudWatch's JSON
filter syntax that infra/ uses is evaluated here; a pattern outside it fails the test."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib import observe
from tests.conftest import ROOT
from tests.support.outcomes import every_outcome

MONITORING = (ROOT / "infra" / "monitoring.tf").read_text()
TERM = re.compile(r'\$\.(\w+) = "([^"*]*)"')
# Which outcome lines each filter must count: (field, value) of observe's line.
EXPECTED = {
    "Processed": ("event", "image.processed"),
    "Rejected": ("event", "image.rejected"),
    "Failed": ("event", "image.failed"),
    "ProcessingTime": ("event", "image.processed"),
    "RenditionsWritten": ("event", "image.processed"),
    "PublishFailures": ("event", "publish.failed"),
    "EventsMalformed": ("error_code", "malformed_event"),
}


def log_metrics() -> dict[str, dict[str, str]]:
    """local.log_metrics: metric => {pattern, value, unit}, with Terraform's escapes undone."""
    block = re.search(r"log_metrics = \{\n(.*?)\n  \}", MONITORING, re.DOTALL)
    assert block, "local.log_metrics not found in infra/monitoring.tf"
    return {
        name: {k: v.replace('\\"', '"') for k, v in re.findall(r'(\w+) = "((?:[^"\\]|\\.)*)"', body)}
        for name, body in re.findall(r"^\s+(\w+)\s+= \{ (.*) \}$", block.group(1), re.MULTILINE)
    }


def matches(pattern: str, line: dict[str, Any]) -> bool:
    """`{ $.a = "x" && $.b = "y" }`: every field equals its text, as CloudWatch evaluates it."""
    inner = re.fullmatch(r"\{ (.*) \}", pattern)
    assert inner, f"not a JSON filter pattern: {pattern}"
    terms = [TERM.fullmatch(t) for t in inner.group(1).split(" && ")]
    assert all(terms), f'{pattern}: only `$.field = "text"` terms joined by && are understood here'
    return all(line.get(t.group(1)) == t.group(2) for t in terms if t)


def value_of(expression: str, line: dict[str, Any]) -> float:
    if not expression.startswith("$."):
        return float(expression)
    value = line.get(expression[2:])
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{expression} is not a number in {line}"
    return float(value)


@pytest.fixture(scope="module")
def outcome_lines() -> list[dict[str, Any]]:
    lines = every_outcome()
    assert {line["event"] for line in lines} >= {"image.processed", "image.rejected", "image.failed", "publish.failed", "reprocess.invalid"}
    return lines


def test_each_filter_counts_exactly_its_outcome_lines(outcome_lines: list[dict[str, Any]]) -> None:
    metrics = log_metrics()
    assert set(metrics) == set(EXPECTED), "a filter was added or removed: say here which outcome it counts"
    for name, metric in metrics.items():
        counted = [line for line in outcome_lines if matches(metric["pattern"], line)]
        field, value = EXPECTED[name]
        wanted = [line for line in outcome_lines if line.get(field) == value]
        assert counted == wanted and wanted, (name, metric["pattern"])
        for line in counted:
            assert value_of(metric["value"], line) >= (0 if name == "ProcessingTime" else 1), (name, line)
    processed = next(line for line in outcome_lines if line["event"] == "image.processed")
    assert value_of(metrics["ProcessingTime"]["value"], processed) == processed["duration_ms"]
    assert value_of(metrics["RenditionsWritten"]["value"], processed) == processed["RenditionsWritten"] >= 3
    # every kind of malformed event (bad S3 and SNS records, another bucket, a reprocess message
    # that is not JSON) is counted as the app's own EMF counts it; an ordinary ignore is not
    malformed = [line for line in outcome_lines if matches(metrics["EventsMalformed"]["pattern"], line)]
    assert [line["event"] for line in malformed] == ["image.ignored"] * 3 + ["reprocess.invalid"]
    assert [value_of(metrics["EventsMalformed"]["value"], line) for line in malformed] == [line["EventsMalformed"] for line in malformed]
    assert any(line["event"] == "image.ignored" and line not in malformed for line in outcome_lines)
    # the units are the ones the app's own EMF metrics use
    assert metrics["ProcessingTime"]["unit"] == observe.METRICS["ProcessingTime"]
    assert {m["unit"] for n, m in metrics.items() if n != "ProcessingTime"} == {"Count"}


def test_alarms_and_dashboard_read_only_metrics_the_filters_publish() -> None:
    published = set(log_metrics())
    used = set(re.findall(r'namespace\s+= local\.metrics_namespace\s+metric_name\s+= "(\w+)"', MONITORING))
    used |= set(re.findall(r'\[local\.metrics_namespace, "(\w+)"\]', MONITORING))
    for names in re.findall(r"for m in \[([^\]]*)\] : \[local\.metrics_namespace, m\]", MONITORING):
        used |= set(re.findall(r'"(\w+)"', names))
    assert {"Processed", "Rejected", "Failed", "RenditionsWritten", "PublishFailures", "EventsMalformed"} <= used
    assert used <= published, f"not published by any metric filter: {used - published}"
