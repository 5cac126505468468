"""Structured outcome lines: one JSON object per line on stdout, in CloudWatch Embedded
Metric Format, so metrics come from the log with no PutMetricData call on the hot path.

Metric names here are a public contract: the Terraform metric filters and alarms use them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "ImagePipeline"
SERVICE = "image-pipeline"

# Every metric the pipeline emits, with its unit (README "Logs and metrics" lists them; the
# Terraform metric filters and alarms match these names). emit() refuses any other name.
METRICS: dict[str, str] = {
    "ImagesProcessed": "Count",
    "ImagesRejected": "Count",
    "ImagesFailed": "Count",
    "ImagesDeleted": "Count",
    "ProcessingTime": "Milliseconds",
    "RenditionsWritten": "Count",
    "BytesWritten": "Bytes",
    "PublishFailures": "Count",
    "EventsMalformed": "Count",
    "FormReplays": "Count",
}

# Written straight to stdout: Lambda's logging handler would prefix the line with level and
# request id, and CloudWatch only extracts EMF from a log event that is pure JSON.
_write_lock = threading.Lock()


def emit(fields: Mapping[str, Any], metrics: Mapping[str, tuple[float, str]]) -> dict[str, Any]:
    """Write one JSON line holding `fields` plus `metrics` ({name: (value, unit)})."""
    unknown = [name for name, (_, unit) in metrics.items() if METRICS.get(name) != unit]
    if unknown:
        raise ValueError(f"metrics {unknown} are not in observe.METRICS with that unit: add them there and to the README")
    line: dict[str, Any] = {"service": SERVICE, **fields}
    if metrics:
        line["_aws"] = {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        }
        line["Service"] = SERVICE
        line.update({name: value for name, (value, _) in metrics.items()})
    text = json.dumps(line, default=str, ensure_ascii=False)
    with _write_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return line
