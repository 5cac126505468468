"""Worker processes that run the upload handler, so a batch uses every core.

Rendering is C (libjpeg-turbo, libwebp, Pillow's resamplers) and releases the GIL, but the
Python around it (boto3 signing and HTTP to the emulator, the catalog write, EXIF and record
building) does not: in one process, images at once share one GIL, and the more cores (and
so images at once: LOCAL_CONCURRENCY follows the CPU count), the more they wait on it. Each
worker is a fresh interpreter (`spawn`: the stack has threads running, which `fork` must not copy) that imports
the app once, with the environment the stack set up, and writes the functions' output to the
same log file. Outcomes reach the live log as before, through the events topic.

A worker that dies (a crash in a codec, the kernel's OOM killer) takes down the pool: the
invocations in flight, its own and the other workers', are reported as failures (and so
retried, then parked if they keep failing), and a new pool takes over. The stack keeps running.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devstack.processes import StartupError

# In the worker: the app's handlers by name, set once by _start_worker.
_HANDLERS: dict[str, Any] = {}


@dataclass(frozen=True)
class Invocation:
    """What a worker needs to invoke a handler as Lambda would (all picklable)."""

    handler: str
    function_name: str
    memory_mb: int
    timeout_s: int
    event: dict[str, Any]


class HandlerProcesses:
    """`count` worker processes, each with the app imported once."""

    def __init__(self, count: int, functions_log: Path, *, verbose: bool = False, handlers: str = "devstack.workers:app_handlers") -> None:
        self.count = max(1, count)
        self._functions_log = functions_log
        self._verbose = verbose
        self._handlers = handlers  # "module:function" returning the handlers by name, called in each worker
        self._lock = threading.Lock()
        _start_resource_tracker(functions_log)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(str(self._functions_log), self._verbose, os.getpid(), self._handlers),
        )

    def warm(self, timeout: float = 120) -> None:
        """Start every worker now (each imports the app), not on the first image."""
        with self._lock:
            futures = [self._pool.submit(_ready) for _ in range(self.count)]
        try:
            for future in futures:
                future.result(timeout)
        except (BrokenProcessPool, TimeoutError) as exc:
            raise StartupError(f"the worker processes did not start ({exc or type(exc).__name__}); see {self._functions_log}") from None

    def invoke(self, call: Invocation) -> str | None:
        """Run the handler in a worker: None if it returned, else the error ("Type: message")."""
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(_invoke, call).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:  # the first to notice replaces it
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
            return f"WorkerDied: the worker process running {call.function_name} exited ({exc})"

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process in list(getattr(self._pool, "_processes", {}).values()) if process.pid]

    def shutdown(self) -> None:
        """Let the invocations in flight finish, then stop the workers."""
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue


def _start_resource_tracker(functions_log: Path) -> None:
    """multiprocessing's resource tracker (a helper process that removes the pool's semaphores
    if the stack dies without cleaning up: a second Ctrl-C) writes its warnings to stderr, the
    terminal's: started here with stderr on the functions' log, it writes them there."""
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    try:
        with functions_log.open("ab") as log_file:
            os.dup2(log_file.fileno(), 2)
            resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# --- in the worker process ---------------------------------------------------------------------


def app_handlers() -> Mapping[str, Any]:  # pragma: no cover - runs in the worker
    """app.py's handlers, imported with the environment the stack set up (stage variables,
    the emulator's endpoint), which the worker inherited."""
    from devstack.stack import _load_app

    return _load_app({}).handler_map


def _start_worker(functions_log: str, verbose: bool, parent: int, handlers: str) -> None:  # pragma: no cover - runs in the worker
    # Ctrl-C reaches the whole process group: the stack decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="watch-parent", daemon=True).start()
    out = open(functions_log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the worker's life
    sys.stdout = _Tee(out, sys.__stdout__ if verbose else None)
    logging.basicConfig(stream=out, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    module, name = handlers.split(":")
    _HANDLERS.update(getattr(importlib.import_module(module), name)())


def _exit_with(parent: int) -> None:  # pragma: no cover - runs in the worker
    """A stack killed without its orderly stop must not leave workers behind."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _ready() -> int:  # pragma: no cover - runs in the worker
    return os.getpid()


def _invoke(call: Invocation) -> str | None:  # pragma: no cover - runs in the worker
    from chalice.local import LambdaContext

    context = LambdaContext(call.function_name, call.memory_mb, max_runtime_ms=call.timeout_s * 1000)
    try:
        _HANDLERS[call.handler](call.event, context)
    except Exception as exc:
        # A string crosses back, not the exception: not every exception survives pickling.
        logging.getLogger("image_pipeline.local.relay").warning("%s raised", call.function_name, exc_info=True)
        return f"{type(exc).__name__}: {exc}"
    return None


class _Tee:
    """The functions' stdout (EMF lines): the log file, and the terminal with LOCAL_VERBOSE."""

    def __init__(self, log_file: TextIO, console: TextIO | None) -> None:
        self._log = log_file
        self._console = console

    def write(self, text: str) -> int:
        self._log.write(text)
        if self._console is not None:
            self._console.write(text)
        return len(text)

    def flush(self) -> None:
        self._log.flush()
        if self._console is not None:
            self._console.flush()
