"""Shared pieces of the Terraform checks: the packaged directory, the terraform binary with
the offline provider mirror, checkov in its own virtual environment, a moto server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import package as packaging
from tests.conftest import ROOT

# CI sets this so that a missing tool fails the run instead of skipping quietly.
REQUIRE_TOOLS = os.environ.get("REQUIRE_INFRA_TOOLS", "") not in ("", "0", "false")
MIRROR_CANDIDATES = [Path(os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins")), Path("/tf-plugins"), Path("/usr/share/tf-plugins")]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def missing(reason: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (REQUIRE_INFRA_TOOLS is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`make package STAGE=prod`, minus the third-party wheels (offline; Terraform does not
    look inside the zip). One per xdist worker: it takes about a second."""
    out = tmp_path_factory.mktemp("package") / "terraform"
    template = packaging.package("prod", out, skip_requirements=True)
    return out, template


@pytest.fixture(scope="session")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for an offline `terraform init`: a CLI config pointing at the mirror."""
    if shutil.which("terraform") is None:
        missing("terraform is not installed (it is not in the Debian or PyPI registries CI can reach)")
    mirror = next((m for m in MIRROR_CANDIDATES if (m / "registry.terraform.io" / "hashicorp" / "aws").is_dir()), None)
    if mirror is None:
        missing(f"no offline mirror of the hashicorp/aws provider in {', '.join(map(str, MIRROR_CANDIDATES))}")
    rc = tmp_path_factory.mktemp("tfcli") / "terraform.rc"
    # The mirror doubles as the plugin cache: init symlinks the 700 MB provider instead of copying it.
    rc.write_text(
        f'plugin_cache_dir = "{mirror}"\n'
        "plugin_cache_may_break_dependency_lock_file = true\n"
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }


def terraform(env: dict[str, str], cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"terraform {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def copy_package(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform*", "terraform.tfstate*"))
    return dst


@pytest.fixture(scope="session")
def checkov() -> Path:
    if not CHECKOV.exists():
        missing(f"checkov is not installed in {CHECKOV.parent.parent} (run `make checkov-venv`)")
    return CHECKOV


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A private moto server on a free loopback port (other test runs may use moto too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def provider_for_moto(url: str) -> dict[str, Any]:
    """An override file: the AWS provider talks to the moto server with fake credentials."""
    services = ["cloudfront", "cloudwatch", "dynamodb", "iam", "lambda", "logs", "s3", "sns", "sqs", "sts", "apigateway", "cognitoidp"]
    return {
        "provider": {
            "aws": {
                "access_key": "testing",
                "secret_key": "testing",
                "skip_credentials_validation": True,
                "skip_requesting_account_id": True,
                "skip_metadata_api_check": True,
                "s3_use_path_style": True,
                "endpoints": [dict.fromkeys(services, url)],
            }
        }
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2))
