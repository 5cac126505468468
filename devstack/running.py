"""Where the running stack listens: `run` records it, `upload` and `status` read it.

`run` may listen on other ports than the defaults (LOCAL_AWS_PORT=5001, or 0 for free
ones). Once ready it writes LOCAL_LOG_DIR/stack.json (default .local/stack.json) with its
ports, stage and process id, and removes it when it stops; the helper commands, run from
the same folder (or with the same LOCAL_LOG_DIR), find the stack there without being told
its ports. A port given in LOCAL_AWS_PORT (other than the default or 0) always wins.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib.settings import LocalSettings
from devstack.outbox import write_atomically

RECORD_NAME = "stack.json"
_DEFAULTS = LocalSettings()


def record_path(local: LocalSettings) -> Path:
    return local.log_dir / RECORD_NAME


def record(local: LocalSettings, api_url: str) -> Path:
    """Called by `run` once ready, with the ports it actually listens on."""
    path = record_path(local)
    fields = {"pid": os.getpid(), "aws_port": local.aws_port, "api_url": api_url, "stage": local.stage}
    write_atomically(path, (json.dumps(fields) + "\n").encode())
    return path


def forget(local: LocalSettings) -> None:
    """Called by `run` as it stops; a record another stack has written since is left alone."""
    path = record_path(local)
    if _read(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def find(local: LocalSettings) -> tuple[LocalSettings, Path | None]:
    """The settings to reach the running stack with, and the record they came from (None
    when LOCAL_AWS_PORT names the port, or no running stack left a record)."""
    if local.aws_port not in (0, _DEFAULTS.aws_port):
        return local, None
    path = record_path(local)
    recorded = _read(path)
    port, pid = recorded.get("aws_port"), recorded.get("pid")
    if not (isinstance(port, int) and 0 < port < 65536 and isinstance(pid, int) and _alive(pid)):
        return replace(local, aws_port=local.aws_port or _DEFAULTS.aws_port), None
    stage = recorded.get("stage") if local.stage == _DEFAULTS.stage and isinstance(recorded.get("stage"), str) else local.stage
    return replace(local, aws_port=port, stage=str(stage)), path


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    """A stack killed without its orderly stop leaves its record behind: check its process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
