"""`run`: the composition root of the local stack (what `make run` starts)."""

from __future__ import annotations

import importlib
import json
import logging
import mimetypes
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import Chalice
from chalice.config import Config
from chalice.constants import DEFAULT_APIGATEWAY_STAGE_NAME, DEFAULT_ENDPOINT_TYPE

from chalicelib import aws
from chalicelib.presets import PresetError, load_profile
from chalicelib.settings import LocalSettings, Settings, SettingsError
from devstack import resources, running
from devstack.live import LiveLog, has_outputs
from devstack.outbox import OutboxMirror, QueueTap, stop_all
from devstack.processes import Child, StartupError, ensure_free, free_port
from devstack.relay import Relay
from devstack.watcher import InboxWatcher, files_in, upload_key
from devstack.workers import HandlerProcesses

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLES_DIR = PROJECT_DIR / "samples"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
LOCAL_REGION = "us-east-1"  # the dev stage's ARNs name it

log = logging.getLogger("image_pipeline.local")


def stage_config(stage: str, local: LocalSettings) -> Config:
    """The stage's Chalice config, with the developer's overrides (PRESETS, ...) on top,
    as `chalice local` builds it (chalice.cli's CLIFactory.create_config_obj). Not through
    chalice.cli itself: importing it builds a blessed Terminal, which sends queries to the
    user's terminal and waits up to 15 s for answers some terminals never give."""
    from_disk = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text(encoding="utf-8"))
    stages = from_disk.get("stages", {})
    if stage not in stages:
        # Chalice would build an empty stage, and the first missing bucket name would be the error.
        raise SettingsError(f"STAGE={stage!r} is not a stage of .chalice/config.json (have: {', '.join(sorted(stages))})")
    params: dict[str, Any] = {"environment_variables": dict(local.overrides)}
    defaults = {
        "project_dir": str(PROJECT_DIR),
        "api_gateway_stage": DEFAULT_APIGATEWAY_STAGE_NAME,
        "api_gateway_endpoint_type": DEFAULT_ENDPOINT_TYPE,
        "autogen_policy": True,
    }
    config = Config(chalice_stage=stage, user_provided_params=params, config_from_disk=from_disk, default_params=defaults)
    environment = config.environment_variables
    params["chalice_app"] = lambda: _load_app(environment)
    return config


def _load_app(environment: dict[str, str]) -> Chalice:
    """app.py imported with the stage's environment (CLIFactory.load_chalice_app)."""
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    vendor = PROJECT_DIR / "vendor"  # what Lambda finds at the top level of the package
    if vendor.is_dir() and str(vendor) not in sys.path:
        sys.path.append(str(vendor))
    os.environ.update(environment)
    app: Chalice = importlib.import_module("app").app
    return app


def local_environment(config: Config, endpoint_url: str) -> dict[str, str]:
    """What the functions see locally: the stage's variables, the emulator, dummy keys."""
    return {
        **config.environment_variables,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


def apply_environment(env: dict[str, str]) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)  # never reach for real credentials
    os.environ.update(env)
    aws.reset()


def upload_file(s3: Any, bucket: str, key: str, path: Path) -> None:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})


@dataclass
class _Console:
    """Where people read: the terminal. The functions' JSON lines go to a log file instead
    (like CloudWatch Logs), and to the terminal too with LOCAL_VERBOSE=1."""

    out: TextIO
    functions_log: TextIO
    verbose: bool

    def write(self, text: str) -> int:
        self.functions_log.write(text)
        if self.verbose:
            self.out.write(text)
        return len(text)

    def flush(self) -> None:
        self.functions_log.flush()
        if self.verbose:
            self.out.flush()


class LocalStack:
    """The emulator, the app's handlers behind the relay, the API server, and the folders."""

    def __init__(self, local: LocalSettings, console: TextIO) -> None:
        if local.aws_port == 0:
            local = replace(local, aws_port=free_port())
        if local.api_port == 0:
            local = replace(local, api_port=free_port())
        ensure_free(local.aws_port, "LOCAL_AWS_PORT")
        ensure_free(local.api_port, "LOCAL_API_PORT")
        self.local = local
        self.inbox, self.outbox, self.logs = local.inbox.resolve(), local.outbox.resolve(), (local.log_dir / "logs").resolve()
        for name, path in (("OUTBOX", self.outbox), ("LOCAL_LOG_DIR", self.logs)):
            if path.is_relative_to(self.inbox) or self.inbox.is_relative_to(path):
                # Every file written there would be uploaded again, forever.
                raise StartupError(f"{name} ({path}) and INBOX ({self.inbox}) must not contain one another")
        self.config = stage_config(local.stage, local)
        apply_environment(local_environment(self.config, local.endpoint_url))
        self.settings = Settings.from_env()
        try:  # app.py would fail on it at import, in this process and in the API server
            load_profile(self.settings.presets)
        except PresetError as exc:
            raise SettingsError(str(exc)) from None
        self.api_url = f"http://127.0.0.1:{local.api_port}"
        self.console = console
        self.say = _printer(console)
        self.live = LiveLog(console, self.settings, self.outbox)
        self._stoppers: list[Callable[[], None]] = []  # run in order by stop()
        self._children: list[Child] = []
        self._functions_log: TextIO | None = None
        self._s3: Any = None
        self._workers: HandlerProcesses | None = None

    def start(self) -> None:
        local, logs = self.local, self.logs
        logs.mkdir(parents=True, exist_ok=True)
        emulator = self._child("AWS emulator (moto)", ["moto.server", "-H", "127.0.0.1", "-p", str(local.aws_port)], "aws.log")
        # The API server starts at once too (it imports the app); it is waited for last.
        api = self._child("API (chalice local)", ["devstack", "api", "--port", str(local.api_port), "--stage", local.stage], "api.log")
        emulator.wait_http(f"{local.endpoint_url}/moto-api/", timeout=60)
        self.say(f"  aws emulator  {local.endpoint_url}  (moto server, log {_show(logs / 'aws.log')})")

        self._capture_function_output()
        app = self.config.chalice_app  # imports app.py with the stage's environment, as `chalice local` does
        wiring = resources.provision(
            lambda service: aws.client(service, self.settings.region),
            self.settings,
            app_name=app.app_name,
            stage=local.stage,
            event_sources=app.event_sources,
            function_config=lambda name: _function_config(self.config, local.stage, name),
        )
        for line in resources.describe(wiring):
            self.say(f"  wired         {line}")

        self._s3, sqs = aws.client("s3", self.settings.region), aws.client("sqs", self.settings.region)
        self.outbox.mkdir(parents=True, exist_ok=True)
        mirror = OutboxMirror(self._s3, self.outbox, self.settings.output_prefix, self.live.mirrored)
        taps = [
            QueueTap(sqs, wiring.mirror_queue_url, mirror.on_notification, "outbox-mirror"),
            QueueTap(sqs, wiring.monitor_queue_url, self.live.event, "live-log"),
        ]
        for tap in taps:
            tap.start()
        self._stoppers.insert(0, lambda: stop_all(taps))  # after the relay: the last renditions still arrive
        if local.workers == "processes":
            self._workers = HandlerProcesses(local.concurrency, logs / "functions.log", verbose=local.verbose)
            self._workers.warm()
        relay = Relay(
            sqs,
            app.handler_map,
            wiring.routes,
            concurrency=local.concurrency,
            on_dead_letter=self.live.dead_letter,
            on_overtime=self.live.overtime,
            processes=self._workers,
        )
        relay.start()
        self._stoppers.insert(0, relay.stop)
        self.say(f"  functions     {', '.join(r.handler for r in wiring.routes)}  (log {_show(logs / 'functions.log')})")
        where = f"{local.concurrency} worker processes" if self._workers is not None else f"{local.concurrency} threads of this process"
        self.say(f"  concurrency   {local.concurrency} images at once ({where}; LOCAL_CONCURRENCY, LOCAL_WORKERS)")

        api.wait_http(self.api_url + "/", timeout=60)
        self.say(f"  api           {self.api_url}  (chalice local, log {_show(logs / 'api.log')})")
        if app.routes:
            self.say(f"  routes        {', '.join(sorted(app.routes))}")

        if seed_inbox(self.inbox):
            self.say(f"  seeded        {_show(self.inbox)} with the sample images from {_show(SAMPLES_DIR)}")
        watcher = InboxWatcher(
            self.inbox,
            self.hand_over,
            on_seen=lambda path, at: self.live.landed(self._key(path), at),
            on_gone=lambda path: self.live.gone(self._key(path)),
        )
        watcher.start()
        self._stoppers.insert(0, watcher.stop)

    def waiting(self) -> list[Path]:
        """Inbox files with no outputs yet (all of them after a fresh start of the emulator)."""
        return [path for path in files_in(self.inbox) if not has_outputs(self.settings, self.outbox, self._key(path))]

    def hand_over(self, path: Path, landed_at: float) -> None:
        """An inbox file is complete: upload it (the bucket's notification does the rest)."""
        key = self._key(path)
        self.live.landed(key, landed_at)
        try:
            upload_file(self._s3, self.settings.upload_bucket, key, path)
        except (OSError, BotoCoreError, ClientError, S3UploadFailedError) as exc:
            self.live.upload_failed(key, f"{type(exc).__name__}: {exc}")

    def kill(self) -> None:
        """Stop at once: every child killed, nothing waited for."""
        for child in self._children:
            child.kill()
        if self._workers is not None:
            self._workers.kill()
        sys.stdout = self.console

    def broken_child(self) -> Child | None:
        return next((child for child in self._children if child.process.poll() is not None), None)

    def stop(self) -> None:
        """Inbox first, then the images in flight, the outbox, the API, the emulator."""
        for stopper in self._stoppers:
            try:
                stopper()
            except Exception:
                log.warning("stopping failed", exc_info=True)
        sys.stdout = self.console
        if self._functions_log is not None:
            self._functions_log.close()

    def _key(self, path: Path) -> str:
        return upload_key(self.settings.upload_prefix, self.inbox, path)

    def _child(self, name: str, module_args: list[str], log_name: str) -> Child:
        child = Child(name, [sys.executable, "-m", *module_args], self.logs / log_name, os.environ, PROJECT_DIR)
        self._children.append(child)
        self._stoppers.append(child.stop)
        return child

    def _capture_function_output(self) -> None:
        """The functions' stdout (EMF lines) and Python logging go to logs/functions.log."""
        self._functions_log = functions_log = (self.logs / "functions.log").open("a", buffering=1, encoding="utf-8")
        sys.stdout = _Console(self.console, functions_log, self.local.verbose)
        logging.basicConfig(stream=functions_log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        logging.getLogger("botocore").setLevel(logging.WARNING)


def run(local: LocalSettings) -> int:
    console = sys.stdout
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: stop at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(local, console)
    say = stack.say
    say(f"image-pipeline local stack: stage {local.stage}, profile {stack.settings.presets}")
    at_once = False
    try:
        stack.start()
        waiting = stack.waiting()
        say(
            f"  inbox         {_show(stack.inbox)} -> outbox {_show(stack.outbox)}"
            + (f"  ({len(waiting)} file(s) without outputs yet)" if waiting else "")
        )
        recorded = running.record(stack.local, stack.api_url)
        say(f"  helpers       python -m devstack status | upload PATH  (from another terminal; they find this stack in {_show(recorded)})")
        say(
            f"ready: api={stack.api_url} aws={stack.local.endpoint_url} inbox={stack.inbox} outbox={stack.outbox}"
            "  (drop images into the inbox; Ctrl-C stops)"
        )
        for path in waiting:
            if stop.is_set():
                break
            stack.hand_over(path, time.time())
        while not stop.wait(0.5):
            if (child := stack.broken_child()) is not None:
                say(f"error: {child.name} exited with code {child.process.returncode}:\n{child.log_tail()}")
                return 1
        say("stopping: finishing the images in flight...")
        return 0
    except StartupError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        at_once = True  # the second Ctrl-C came before the orderly stop began
        return 130  # (the `finally` below exits the process first)
    finally:
        running.forget(stack.local)
        if not at_once:
            try:
                stack.stop()
            except KeyboardInterrupt:  # the second Ctrl-C, while the orderly stop waits
                at_once = True
        if at_once:
            stack.kill()
            say("stopped at once: images in flight were dropped (the next `make run` uploads them again)")
            # Now, without unwinding: the relay's threads would only print tracebacks on the way out.
            os._exit(130)
        left = len(stack.waiting()) if stack.inbox.is_dir() else 0
        later = f"; {left} inbox file(s) not done yet: the next `make run` uploads them again" if left else ""
        say(f"stopped. outbox kept at {_show(stack.outbox)}{later}")


def seed_inbox(inbox: Path) -> bool:
    """On first run (no inbox yet) copy the shipped samples in, so the flow is visible at once."""
    if inbox.exists():
        return False
    if SAMPLES_DIR.is_dir():
        shutil.copytree(SAMPLES_DIR, inbox, ignore=shutil.ignore_patterns("SOURCES.md", ".*"))
    else:
        inbox.mkdir(parents=True)
    return True


def _function_config(config: Config, stage: str, name: str) -> resources.FunctionConfig:
    scoped = config.scope(stage, name)
    return resources.FunctionConfig(memory_mb=int(scoped.lambda_memory_size or 128), timeout_s=int(scoped.lambda_timeout or 60))


def _printer(out: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    return say


def _show(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
