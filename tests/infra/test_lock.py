"""requirements-lock.txt: the Lambda package's dependencies, every one hash-pinned and in
step with requirements.txt (deploy/lock.py, `make lock`). Offline: nothing is fetched."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from deploy import lock
from deploy import package as deploy_package
from tests.conftest import ROOT

REQUIREMENTS = (ROOT / "requirements.txt").read_text()
LOCK = (ROOT / "requirements-lock.txt").read_text()


def test_every_runtime_requirement_is_locked_with_hashes_at_its_version() -> None:
    assert lock.problems(REQUIREMENTS, LOCK) == [], "run `make lock` and commit requirements-lock.txt"
    locked = lock.hashes_in(LOCK)
    assert {name: version for name, (version, _) in locked.items()} == lock.pins(REQUIREMENTS)
    assert all(len(digests) >= 1 and all(len(d) == 64 for d in digests) for _, digests in locked.values())
    assert LOCK.splitlines()[2] == "--require-hashes"  # pip refuses anything unhashed, transitive or not


def test_the_lock_holds_everything_the_locked_packages_pull_in() -> None:
    """--require-hashes fails the build on a dependency that is not in the file: check each
    locked package's requirements (as installed here) for Lambda's Linux and Python 3.13."""
    lambda_env = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux", "python_version": "3.13"}
    locked = lock.hashes_in(LOCK)
    missing = []
    for name in locked:
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed in this environment: pip's own check at package time remains
        for spec in map(Requirement, requires):
            if (spec.marker is None or spec.marker.evaluate({**lambda_env, "extra": ""})) and lock.normalise(spec.name) not in locked:
                missing.append(f"{name} needs {spec}")
    assert missing == [], "add them to requirements.txt (pinned) and run `make lock`"


def test_a_stale_lock_is_named_and_refused_by_make_package(tmp_path: Path) -> None:
    """What happens when someone adds a package (pi-heif, blurhash...) or bumps a version and
    forgets `make lock`: each difference named; `make package` refuses to build."""
    added = REQUIREMENTS + "numpy==2.5.5\n"
    bumped = REQUIREMENTS.replace("six==1.17.0", "six==1.16.0")
    assert lock.problems(added, LOCK) == ["numpy==2.5.5 is not in requirements-lock.txt"]
    assert lock.problems(bumped, LOCK) == ["six: requirements.txt pins 1.16.0, the lock 1.17.0"]
    unhashed = LOCK.replace("--require-hashes\n", "")
    assert lock.problems(REQUIREMENTS, unhashed) == ["the lock does not say --require-hashes"]
    (tmp_path / "requirements.txt").write_text(added)
    (tmp_path / "requirements-lock.txt").write_text(LOCK)
    with pytest.raises(lock.LockError, match=r"stale: numpy==2\.5\.5 is not in .*`make lock`"):
        lock.lambda_requirements(tmp_path)
    assert lock.lambda_requirements(ROOT) == LOCK  # what `make package` puts in the zip's requirements.txt
    with pytest.raises(lock.LockError, match="pin it as name==version"):
        lock.pins("pillow>=12\n")


def test_make_lock_writes_one_hashed_entry_per_pin() -> None:
    fetched: list[tuple[str, str]] = []

    def fake_pypi(name: str, version: str) -> list[str]:
        fetched.append((name, version))
        return [f"{len(name):064x}", f"{len(version):064x}"]

    text = lock.render("# comment\nsix==1.17.0\nPillow==13.0.0  # images\n", fake_pypi)
    assert fetched == [("pillow", "13.0.0"), ("six", "1.17.0")]
    assert lock.problems("six==1.17.0\nPillow==13.0.0\n", text) == []
    assert "pillow==13.0.0 \\\n    --hash=sha256:" in text


def test_the_package_source_gets_the_lock_as_its_requirements(tmp_path: Path) -> None:
    deploy_package._copy_app(tmp_path / "src", "prod", skip_requirements=False)
    assert (tmp_path / "src" / "requirements.txt").read_text() == LOCK


def test_pip_refuses_bytes_the_lock_does_not_hash(tmp_path: Path) -> None:
    """The lock's format as pip itself reads it (offline: a local "wheel" of the right name
    and the wrong bytes stands in for a tampered release): refused, and so is a lock entry
    without a hash."""
    links, out = tmp_path / "links", tmp_path / "out"
    links.mkdir()
    (links / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"not the wheel PyPI published")
    entry = re.search(r"^six==1\.17\.0 \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", LOCK, re.MULTILINE)
    assert entry, "six is in the lock with its hashes"
    pip = [sys.executable, "-m", "pip", "download", "--isolated", "--no-index", "--no-deps", "--find-links", str(links)]

    def download(lock_text: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "lock.txt").write_text(lock_text)
        return subprocess.run([*pip, "--dest", str(out), "-r", str(tmp_path / "lock.txt")], capture_output=True, text=True, check=False)

    tampered = download(lock.HEADER + entry.group(0))
    assert tampered.returncode != 0 and "DO NOT MATCH THE HASHES" in tampered.stderr, tampered.stderr
    unhashed = download(lock.HEADER + "six==1.17.0\n")
    assert unhashed.returncode != 0 and "Hashes are required in --require-hashes mode" in unhashed.stderr, unhashed.stderr
    assert not out.exists() or not list(out.iterdir())  # nothing was kept
