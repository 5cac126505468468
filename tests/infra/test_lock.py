"""requirements-lock.txt: the Lambda package's dependencies, every one hash-pinned and in
step with requirements.txt (deploy/lock.py, `make lock`). Offline: nothing is fetched."""

from __future__ import annotations

import importlib.metadata
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
    added = REQUIREMENTS + "pi-heif==1.1.0\n"
    bumped = REQUIREMENTS.replace("six==1.17.0", "six==1.16.0")
    assert lock.problems(added, LOCK) == ["pi-heif==1.1.0 is not in requirements-lock.txt"]
    assert lock.problems(bumped, LOCK) == ["six: requirements.txt pins 1.16.0, the lock 1.17.0"]
    unhashed = LOCK.replace("--require-hashes\n", "")
    assert lock.problems(REQUIREMENTS, unhashed) == ["the lock does not say --require-hashes"]
    (tmp_path / "requirements.txt").write_text(added)
    (tmp_path / "requirements-lock.txt").write_text(LOCK)
    with pytest.raises(lock.LockError, match=r"stale: pi-heif==1\.1\.0 is not in .*`make lock`"):
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
