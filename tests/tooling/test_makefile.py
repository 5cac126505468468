"""`make` as a newcomer meets it before any Python code of ours runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Python 3.11 as far as the Makefile's version check can tell; it refuses to do anything else.
OLD_PYTHON = f"""#!{sys.executable}
import sys
if sys.argv[1:2] == ["-c"]:
    sys.version_info = (3, 11, 7, "final", 0)
    exec(sys.argv[2])
sys.exit("stand-in for Python 3.11: only -c")
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_an_older_python_given_as_PYTHON_is_refused_before_a_venv_is_made(tmp_path: Path) -> None:
    """docs/development.md: Python must be 3.12+, "so the Makefile refuses older interpreters". With
    PYTHON=python3.11 it used to build a 3.11 venv and end in pip's ResolutionImpossible."""
    python = tmp_path / "python3.11"
    python.write_text(OLD_PYTHON)
    python.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "venv", f"PYTHON={python}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"error: PYTHON={python} is not Python 3.12 or newer" in result.stderr
    assert not venv.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_path_2_out_of_order_says_which_command_comes_first(tmp_path: Path) -> None:
    """`make chalice-config` before `make infra` ended in "chalice_environment.json: No such
    file or directory"; it must name the step that was skipped, and write nothing."""
    infra = tmp_path / "infra"
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "chalice-config", "STAGE=prod", f"INFRA_DIR={infra}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "run `make infra STAGE=prod` first" in result.stderr
    assert not infra.exists()


# A Python 3.12+ whose venv's pip prints what the real one does on a first install, offline.
STUB_PYTHON = f"""#!{sys.executable}
import os, shutil, sys
args = sys.argv[1:]
if args[:1] == ["-c"]:
    exec(args[1])
elif args[:2] == ["-m", "venv"]:
    os.makedirs(os.path.join(args[2], "bin"))
    shutil.copy(__file__, os.path.join(args[2], "bin", "python"))
elif args[:3] == ["-m", "pip", "install"]:
    print("Collecting boto3==1.44.5 (from -r requirements.txt (line 3))")
    print("  Downloading boto3-1.44.5-py3-none-any.whl.metadata (6.8 kB)")
    print("Collecting pillow==13.0.0 (from -r requirements.txt (line 5))")
    print("Installing collected packages: boto3, pillow")
    print("Successfully installed boto3-1.44.5 pillow-13.0.0")
    sys.exit(int(os.environ.get("STUB_PIP_EXIT", "0")))
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("pip_exit", [0, 1])
def test_the_first_install_says_what_it_does_and_how_long(tmp_path: Path, pip_exit: int) -> None:
    """The first `make run` installed for ~4 minutes with no output but one pip line. It says
    what it installs and roughly how long, and names each package as pip fetches it; a pip
    failure still fails make and leaves the venv to be installed again."""
    python = tmp_path / "python3.13"
    python.write_text(STUB_PYTHON)
    python.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "venv", f"PYTHON={python}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "STUB_PIP_EXIT": str(pip_exit)},
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"venv: creating {venv} with {python}"
    assert lines[1].startswith(f"venv: installing the pinned dependencies into {venv}: about 90 packages")
    assert "few minutes (about 4 on a" in result.stdout
    assert [line.split() for line in lines if line.startswith(("  fetching", "  installing"))] == [
        ["fetching", "boto3==1.44.5"],
        ["fetching", "pillow==13.0.0"],
        ["installing", "them", "(no", "output", "until", "done)"],
    ]
    if pip_exit:
        assert result.returncode != 0 and not (venv / "bin" / ".installed").exists()
    else:
        assert result.returncode == 0, result.stderr
        assert lines[-1] == f"venv: {venv} is ready" and (venv / "bin" / ".installed").exists()
