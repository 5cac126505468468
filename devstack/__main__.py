"""python -m devstack run | upload PATH... | status | api

  run          the whole pipeline on this machine (what `make run` does)
  upload PATH  upload files or folders to the running stack's upload bucket
  status       what the running stack holds: catalog by status, queues, buckets
  api          the HTTP routes only (`chalice local` without autoreload; `run` starts it)

Options come from environment variables: LOCAL_AWS_PORT, LOCAL_API_PORT, INBOX, OUTBOX,
STAGE, PRESETS, ... (docs: "Run it locally", "Options"). `upload` and `status` find the
running stack, on whatever ports, through the record `run` writes to LOCAL_LOG_DIR/stack.json
(default .local/stack.json): run them from the same folder. LOCAL_AWS_PORT=<port> names one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from chalicelib.settings import LocalSettings, SettingsError
from devstack.processes import StartupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the whole pipeline locally")
    upload = commands.add_parser("upload", help="upload files or folders to the running stack")
    upload.add_argument("paths", nargs="+", type=Path)
    commands.add_parser("status", help="show what the running stack holds")
    api = commands.add_parser("api", help="serve the HTTP routes (started by run)")
    api.add_argument("--port", type=int, required=True)
    api.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    try:
        local = LocalSettings.from_env()
        if args.command == "run":
            from devstack.stack import run

            return run(local)
        if args.command == "api":
            return serve_api(local, args.port, args.stage)
        from devstack import client

        if args.command == "upload":
            return client.upload(local, args.paths)
        return client.status(local)
    except (SettingsError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C while `upload` or `status` runs, or before `run` has taken over the signal
        # (it handles its own from then on): no traceback. Uploads already made stay.
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `... status | head`: the reader has had enough. Python's own advice: no traceback,
        # and stdout pointed at devnull so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def serve_api(local: LocalSettings, port: int, stage: str) -> int:
    """What `chalice local --no-autoreload` does, plus the developer's setting overrides.
    (Autoreload is off: with watchdog installed it restarts endlessly.)"""
    from chalice.deploy.validate import validate_routes

    from devstack.stack import stage_config

    config = stage_config(stage, local)
    app = config.chalice_app
    validate_routes(app.routes)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    from chalice.local import create_local_server

    server = create_local_server(app, config, "127.0.0.1", port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
