"""`make run` with a setting a newcomer got wrong: one clear line, nothing started.

Runs `python -m devstack run` as the user does, in a subprocess (about a second each:
it fails before the emulator or the API server would start)."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.settings import LOCAL_OVERRIDABLE, LocalSettings
from devstack.stack import PROJECT_DIR
from tests.conftest import DEV_ENV, FIXTURES


def _stack_env(tmp_path: Path) -> dict[str, str]:
    """This environment minus any local-stack settings, with free ports and folders in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_OVERRIDABLE and k != "STAGE"}
    return env | {
        "LOCAL_AWS_PORT": "0",
        "LOCAL_API_PORT": "0",
        "INBOX": str(tmp_path / "inbox"),
        "OUTBOX": str(tmp_path / "outbox"),
        "LOCAL_LOG_DIR": str(tmp_path / "local"),
    }


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "run"],
        check=False,
        cwd=PROJECT_DIR,
        env=_stack_env(tmp_path) | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRESETS": "fancy"}, "error: PRESETS='fancy': not a profile name (web, classic) nor a JSON file"),
        ({"PRESETS": "profiles/missing.json"}, "error: PRESETS='profiles/missing.json': file not found"),
        ({"PRESETS": "{bad}"}, "error: PRESETS='{bad}': preset 'card': width and height must be positive integers, not '600'"),
        ({"STAGE": "staging"}, "error: STAGE='staging' is not a stage of .chalice/config.json (have: dev, prod)"),
    ],
)
def test_a_wrong_setting_stops_make_run_with_one_line_and_starts_nothing(tmp_path: Path, env: dict[str, str], message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "shop", "presets": [{"name": "card", "format": "webp", "width": "600"}]}')
    env = {k: v.replace("{bad}", str(bad)) for k, v in env.items()}
    result = _run(tmp_path, **env)
    assert result.returncode == 2
    assert result.stderr.strip() == message.replace("{bad}", str(bad))
    assert "Traceback" not in result.stdout + result.stderr
    # Failed before anything started: no emulator log, no seeded inbox.
    assert not (tmp_path / "local").exists()
    assert not (tmp_path / "inbox").exists()


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_without_a_traceback(tmp_path: Path) -> None:
    """docs/local-stack.md: "Press it twice to stop at once." The second Ctrl-C lands while the first one's
    orderly stop waits for the relay; it used to end in KeyboardInterrupt and thread tracebacks."""
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=PROJECT_DIR,
        env=_stack_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert stack.stdout is not None
        lines = []
        for line in stack.stdout:
            lines.append(line)
            if line.startswith("ready:"):
                break
        assert lines and lines[-1].startswith("ready:"), "".join(lines)
        aws_url = lines[-1].split("aws=")[1].split()[0]
        stack.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the relay's long polls keep the orderly stop busy for about a second
        stack.send_signal(signal.SIGINT)
        rest = stack.stdout.read()
        assert stack.wait(timeout=20) == 130
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
    assert "Traceback" not in rest and "Exception in thread" not in rest, rest
    assert rest.strip().splitlines()[-1].startswith("stopped at once"), rest
    with pytest.raises(OSError):  # the emulator went with it
        urllib.request.urlopen(aws_url + "/moto-api/", timeout=2)


def test_commands_at_a_terminal_send_it_no_queries(tmp_path: Path) -> None:
    """At a terminal, importing `chalice.cli` builds a blessed `Terminal`, which writes
    capability and cursor-position queries to it and waits up to 5 s for the answers: escape
    junk on screen (or in a captured session) and a stall before `make run`, `upload` or
    `status` print anything. Run `status` (no stack: it fails at once) on a pseudo-terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(PROJECT_DIR)
        os.environ["LOCAL_AWS_PORT"] = str(_closed_port())
        os.execv(sys.executable, [sys.executable, "-m", "devstack", "status"])
    output = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 1, text
    assert "error: no local stack answers" in text
    assert "\x1b" not in text, f"escape sequences written to the terminal: {text!r}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ctrl_c_during_upload_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from devstack import __main__ as cli
    from devstack import client

    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "upload", interrupted)
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert cli.main(["upload", str(tmp_path / "a.jpg")]) == 130
    assert capsys.readouterr().err == "interrupted\n"


# --- finding a stack on other ports ------------------------------------------------------


def _helper_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """`upload`/`status` run from the project folder with run's LOCAL_LOG_DIR and no port."""
    base = {k: v for k, v in os.environ.items() if k not in ("LOCAL_AWS_PORT", "STAGE", "AWS_ENDPOINT_URL")}
    return base | {"LOCAL_LOG_DIR": str(tmp_path / "local"), "INBOX": str(tmp_path / "inbox")} | env


def _helper(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        check=False,
        cwd=PROJECT_DIR,
        env=_helper_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def emulator() -> Iterator[int]:
    """A moto server on a port that is not the default 5000, as `LOCAL_AWS_PORT=0 make run` picks."""
    from moto.server import ThreadedMotoServer

    port = _closed_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def test_status_and_upload_find_a_stack_started_on_other_ports(tmp_path: Path, emulator: int) -> None:
    """A first-time user started `LOCAL_AWS_PORT=5001 make run` and `status` looked at 5000.
    `run` records where it listens in LOCAL_LOG_DIR; the helpers read it."""
    import boto3

    from devstack import running

    local = LocalSettings(aws_port=emulator, log_dir=tmp_path / "local")
    running.record(local, "http://127.0.0.1:8123")  # as `run` does once ready (this process stands in for it)
    s3 = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{emulator}", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    s3.create_bucket(Bucket=DEV_ENV["UPLOAD_BUCKET"])

    status = _helper(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    record = tmp_path / "local" / "stack.json"
    assert status.stdout.startswith(f"local stack at http://127.0.0.1:{emulator} (stage dev, found through {record})"), status.stdout

    uploaded = _helper(tmp_path, "upload", str(FIXTURES / "orient_landscape_1.jpg"))
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.strip() == f"uploaded s3://{DEV_ENV['UPLOAD_BUCKET']}/uploads/orient_landscape_1.jpg"
    assert s3.head_object(Bucket=DEV_ENV["UPLOAD_BUCKET"], Key="uploads/orient_landscape_1.jpg")["ContentLength"] > 0

    # A port named in LOCAL_AWS_PORT wins over the record.
    closed = _closed_port()
    named = _helper(tmp_path, "status", LOCAL_AWS_PORT=str(closed))
    assert named.returncode == 1 and f"no local stack answers at http://127.0.0.1:{closed} " in named.stderr

    running.forget(local)  # as `run` does when it stops
    assert not (tmp_path / "local" / "stack.json").exists()


def test_a_helper_that_finds_no_stack_says_how_to_point_it_at_one(tmp_path: Path) -> None:
    result = _helper(tmp_path, "status", LOCAL_AWS_PORT=str(_closed_port()))
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("error: no local stack answers at http://127.0.0.1:"), message
    assert str(tmp_path / "local" / "stack.json") in message and "LOCAL_AWS_PORT=<port>" in message
    assert "Traceback" not in message


def test_the_record_is_read_only_when_no_port_is_named_and_its_stack_runs(tmp_path: Path) -> None:
    from devstack import running

    local = LocalSettings(log_dir=tmp_path)
    assert running.find(local) == (local, None)  # no record: the default port
    running.record(replace(local, aws_port=5123, stage="prod"), "http://127.0.0.1:8123")
    found, record = running.find(local)
    assert (found.aws_port, found.stage, record) == (5123, "prod", tmp_path / "stack.json")
    assert running.find(replace(local, aws_port=0))[0].aws_port == 5123  # run's own LOCAL_AWS_PORT=0 finds it too
    assert running.find(replace(local, aws_port=5200)) == (replace(local, aws_port=5200), None)
    assert running.find(replace(local, stage="other"))[0].stage == "other"  # a STAGE given wins
    # The record of a stack that was killed (no orderly stop) names a process that is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (tmp_path / "stack.json").write_text(json.dumps({"pid": int(gone.stdout), "aws_port": 5123, "stage": "dev"}))
    assert running.find(local) == (local, None)
    (tmp_path / "stack.json").write_text("{not json")
    assert running.find(replace(local, aws_port=0)) == (local, None)  # port 0 cannot be reached: the default
