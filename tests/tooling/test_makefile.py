"""`make` as a newcomer meets it before any Python code of ours runs."""

from __future__ import annotations

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
