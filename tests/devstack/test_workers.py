"""The upload handler in worker processes: results, errors and crashes come back to the relay
as they would from a handler in the stack's own process, and output goes to the functions' log."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from chalicelib.settings import LocalSettings, SettingsError
from devstack.workers import HandlerProcesses, Invocation


def _call(handler: str, n: int) -> Invocation:
    return Invocation(handler, f"fn-{handler}", 1024, 60, {"n": n})


def test_handlers_run_in_other_processes_and_report_errors_and_crashes(tmp_path: Path) -> None:
    log = tmp_path / "functions.log"
    workers = HandlerProcesses(2, log, handlers="tests.devstack.worker_handlers:handlers")
    try:
        workers.warm()
        assert len(workers.pids()) == 2 and os.getpid() not in workers.pids()
        assert workers.invoke(_call("ok", 1)) is None
        assert workers.invoke(_call("raises", 2)) == "ValueError: cannot handle 2"
        # A worker that dies fails only its own invocation; the next one runs in a new worker.
        died = workers.invoke(_call("dies", 3))
        assert died is not None and died.startswith("WorkerDied:")
        assert workers.invoke(_call("ok", 4)) is None
        pids = workers.pids()
    finally:
        workers.shutdown()
    text = log.read_text()
    handled = dict(re.findall(r"handled (\d+) in (\d+) as fn-ok", text))
    assert set(handled) == {"1", "4"} and str(os.getpid()) not in handled.values()
    assert handled["4"] in {str(pid) for pid in pids}
    assert "cannot handle 2" in text, "the traceback is in the functions' log"


def test_one_image_per_cpu_in_worker_processes_by_default() -> None:
    local = LocalSettings.from_env({})
    assert local.concurrency == (os.cpu_count() or 1) and local.workers == "processes"
    assert LocalSettings.from_env({"LOCAL_CONCURRENCY": "3", "LOCAL_WORKERS": "threads"}).workers == "threads"
    with pytest.raises(SettingsError, match="LOCAL_WORKERS"):
        LocalSettings.from_env({"LOCAL_WORKERS": "fibres"})
