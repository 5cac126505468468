"""`run`: the composition root of the local stack (what `make run` starts)."""

from __future__ import annotations

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
from chalice.cli.factory import CLIFactory
from chalice.config import Config

from chalicelib import aws
from chalicelib.local import resources
from chalicelib.local.live import LiveLog, has_outputs
from chalicelib.local.outbox import OutboxMirror, QueueTap, stop_all
from chalicelib.local.processes import Child, StartupError, ensure_free, free_port
from chalicelib.local.relay import Relay
from chalicelib.local.watcher import InboxWatcher, files_in, upload_key
from chalicelib.settings import LocalSettings, Settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
SAMPLES_DIR = PROJECT_DIR / "samples"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

log = logging.getLogger("image_pipeline.local")


def stage_config(stage: str, local: LocalSettings) -> Config:
    """The stage's Chalice config, with the developer's overrides (PRESETS, ...) on top,
    the way `chalice local` builds it."""
    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    return factory.create_config_obj(chalice_stage_name=stage, user_provided_params={"environment_variables": dict(local.overrides)})


def local_environment(config: Config, endpoint_url: str) -> dict[str, str]:
    """What the functions see locally: the stage's variables, the emulator, dummy keys."""
    return {
        **config.environment_variables,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
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


def run(local: LocalSettings) -> int:
    console = sys.stdout
    if local.aws_port == 0:
        local = replace(local, aws_port=free_port())
    if local.api_port == 0:
        local = replace(local, api_port=free_port())
    ensure_free(local.aws_port, "LOCAL_AWS_PORT")
    ensure_free(local.api_port, "LOCAL_API_PORT")
    inbox, outbox, logs = local.inbox.resolve(), local.outbox.resolve(), (local.log_dir / "logs").resolve()
    for name, path in (("OUTBOX", outbox), ("LOCAL_LOG_DIR", logs)):
        if path.is_relative_to(inbox) or inbox.is_relative_to(path):
            # Every file written there would be uploaded again, forever.
            raise StartupError(f"{name} ({path}) and INBOX ({inbox}) must not contain one another")
    logs.mkdir(parents=True, exist_ok=True)
    config = stage_config(local.stage, local)
    apply_environment(local_environment(config, local.endpoint_url))
    settings = Settings.from_env()
    api_url = f"http://127.0.0.1:{local.api_port}"

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: stop at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    say = _printer(console)
    say(f"image-pipeline local stack: stage {local.stage}, profile {settings.presets}")
    stoppers: list[Callable[[], None]] = []
    functions_log = (logs / "functions.log").open("a", buffering=1, encoding="utf-8")
    try:
        emulator = Child(
            "AWS emulator (moto)",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(local.aws_port)],
            logs / "aws.log",
            os.environ,
            PROJECT_DIR,
        )
        stoppers.append(emulator.stop)
        api = Child(
            "API (chalice local)",
            [sys.executable, "-m", "chalicelib.local", "api", "--port", str(local.api_port), "--stage", local.stage],
            logs / "api.log",
            os.environ,
            PROJECT_DIR,
        )
        stoppers.append(api.stop)
        emulator.wait_http(f"{local.endpoint_url}/moto-api/", timeout=60)
        say(f"  aws emulator  {local.endpoint_url}  (moto server, log {_show(logs / 'aws.log')})")

        # Functions log: stdout (the EMF lines) and Python logging go to the file.
        sys.stdout = _Console(console, functions_log, local.verbose)
        logging.basicConfig(stream=functions_log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        logging.getLogger("botocore").setLevel(logging.WARNING)
        app = config.chalice_app  # imports app.py with the stage's environment

        wiring = resources.provision(
            lambda service: aws.client(service, settings.region),
            settings,
            app_name=app.app_name,
            stage=local.stage,
            event_sources=app.event_sources,
            function_config=lambda name: _function_config(config, local.stage, name),
        )
        for line in resources.describe(wiring):
            say(f"  wired         {line}")

        s3, sqs = aws.client("s3", settings.region), aws.client("sqs", settings.region)
        live = LiveLog(console, settings, outbox)
        outbox.mkdir(parents=True, exist_ok=True)
        mirror = OutboxMirror(s3, outbox, settings.output_prefix, live.mirrored)
        taps = [
            QueueTap(sqs, wiring.mirror_queue_url, mirror.on_notification, "outbox-mirror"),
            QueueTap(sqs, wiring.monitor_queue_url, live.event, "live-log"),
        ]
        relay = Relay(
            sqs, app.handler_map, wiring.routes, concurrency=local.concurrency, on_dead_letter=live.dead_letter, on_overtime=live.overtime
        )
        for tap in taps:
            tap.start()
        stoppers.insert(0, lambda: stop_all(taps))  # after the relay: the last renditions still arrive
        relay.start()
        stoppers.insert(0, relay.stop)
        say(f"  functions     {', '.join(r.handler for r in wiring.routes)}  (log {_show(logs / 'functions.log')})")

        api.wait_http(api_url + "/", timeout=60)
        say(f"  api           {api_url}  (chalice local, log {_show(logs / 'api.log')})")

        def hand_over(path: Path, landed_at: float) -> None:
            key = upload_key(settings.upload_prefix, inbox, path)
            live.landed(key, landed_at)
            try:
                upload_file(s3, settings.upload_bucket, key, path)
            except (OSError, BotoCoreError, ClientError, S3UploadFailedError) as exc:
                live.upload_failed(key, f"{type(exc).__name__}: {exc}")

        if seed_inbox(inbox):
            say(f"  seeded        {_show(inbox)} with the sample images from {_show(SAMPLES_DIR)}")
        watcher = InboxWatcher(inbox, hand_over, lambda path, at: live.landed(upload_key(settings.upload_prefix, inbox, path), at))
        watcher.start()
        stoppers.insert(0, watcher.stop)
        waiting = [p for p in files_in(inbox) if not has_outputs(settings, outbox, upload_key(settings.upload_prefix, inbox, p))]
        say(
            f"  inbox         {_show(inbox)} -> outbox {_show(outbox)}"
            + (f"  ({len(waiting)} file(s) without outputs yet)" if waiting else "")
        )
        say(f"ready: api={api_url} aws={local.endpoint_url} inbox={inbox} outbox={outbox}  (drop images into the inbox; Ctrl-C stops)")
        for path in waiting:
            hand_over(path, time.time())
        while not stop.wait(0.5):
            for child in (emulator, api):
                if child.process.poll() is not None:
                    say(f"error: {child.name} exited with code {child.process.returncode}:\n{child.log_tail()}")
                    return 1
        say("stopping: finishing the images in flight...")
        return 0
    except StartupError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("stopping now")
        return 130
    finally:
        for stopper in stoppers:
            try:
                stopper()
            except Exception:
                log.warning("stopping failed", exc_info=True)
        sys.stdout = console
        functions_log.close()
        say(f"stopped. outbox kept at {_show(outbox)}")


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
