"""Handlers for the worker-process tests, imported in each worker (by name, as app.py is)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any


def _ok(event: dict[str, Any], context: Any) -> None:
    print(f"handled {event['n']} in {os.getpid()} as {context.function_name}")


def _raises(event: dict[str, Any], context: Any) -> None:
    raise ValueError(f"cannot handle {event['n']}")


def _dies(event: dict[str, Any], context: Any) -> None:
    os._exit(3)  # a crash in a codec, the OOM killer: the process is gone


def handlers() -> Mapping[str, Callable[[dict[str, Any], Any], None]]:
    return {"ok": _ok, "raises": _raises, "dies": _dies}
