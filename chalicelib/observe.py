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

# Written straight to stdout: Lambda's logging handler would prefix the line with level and
# request id, and CloudWatch only extracts EMF from a log event that is pure JSON.
_write_lock = threading.Lock()


def emit(fields: Mapping[str, Any], metrics: Mapping[str, tuple[float, str]]) -> dict[str, Any]:
    """Write one JSON line holding `fields` plus `metrics` ({name: (value, unit)})."""
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
