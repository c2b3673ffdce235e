"""The locks: exact pins compiled from pyproject.toml, the same versions for the platform and ./dev."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from tests.deploy import buildpack
from tests.deploy.venvs import ROOT, lock_pins, marker_env

PLATFORM_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][^ ;]*( ; .+)?$")


def declared(*extras: str) -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return found


def minors() -> list[str]:
    return buildpack.tested_minors(ROOT)


def environment_of(minor: str) -> dict[str, str]:
    env = marker_env(sys.executable)
    return {**env, "python_version": minor, "python_full_version": f"{minor}.0"}


def test_the_platform_lock_is_exact_pins_ending_with_the_project_itself() -> None:
    lines = [line.split("#", 1)[0].strip() for line in PLATFORM_LOCK.read_text().splitlines()]
    lines = [line for line in lines if line]
    assert lines[-1] == ".", "the buildpack installs the project from requirements.txt's last line"
    for line in lines[:-1]:
        assert _PIN.match(line), f"not an exact pin: {line!r}"
    assert "-e" not in PLATFORM_LOCK.read_text().split(), "a platform install is never editable"


def test_the_dev_lock_is_exact_pins_only() -> None:
    for line in DEV_LOCK.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        assert not text or _PIN.match(text), f"not an exact pin: {line!r}"


@pytest.mark.parametrize("minor", minors())
def test_every_declared_requirement_is_pinned_within_its_range(minor: str) -> None:
    env = environment_of(minor)
    for lock, requirements in ((PLATFORM_LOCK, declared()), (DEV_LOCK, declared("dev", "embedded"))):
        pins = lock_pins(lock, env)
        for requirement in requirements:
            if requirement.marker and not requirement.marker.evaluate(env):
                continue
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock.name} has no pin for {requirement} on Python {minor}: run ./dev lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock.name} pins {name}=={pins[name]}, pyproject.toml asks {requirement}: run ./dev lock"
            )


def test_the_platform_lock_carries_no_development_tool_and_no_embedded_redis() -> None:
    pins = lock_pins(PLATFORM_LOCK)
    dev_only = {canonicalize_name(r.name) for r in declared("dev", "embedded")} - {
        canonicalize_name(r.name) for r in declared()
    }
    assert not dev_only & set(pins), sorted(dev_only & set(pins))


def test_the_platform_and_dev_locks_pin_the_same_versions() -> None:
    platform, dev = lock_pins(PLATFORM_LOCK), lock_pins(DEV_LOCK)
    differ = {name: (version, dev.get(name)) for name, version in platform.items() if dev.get(name) != version}
    assert not differ, f"requirements.txt vs requirements-dev.txt: {differ}"


def test_h11_is_at_a_release_without_cve_2025_43859() -> None:
    for lock in (PLATFORM_LOCK, DEV_LOCK):
        assert Version(lock_pins(lock)["h11"]) >= Version("0.16.0"), lock.name


def test_this_virtualenv_runs_exactly_the_dev_lock() -> None:
    """./dev installs from the lock, so what the tests run is what the lock says."""
    wrong = {}
    for name, version in lock_pins(DEV_LOCK, marker_env(sys.executable)).items():
        try:
            got = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            got = "missing"
        if got != version:
            wrong[name] = f"{got} (lock: {version})"
    assert not wrong, f"this virtualenv differs from requirements-dev.txt: {wrong}; run ./dev"


def test_the_locks_are_what_dev_lock_compiles_from_pyproject() -> None:
    """Recompiles both locks in a scratch folder (uv, from PyPI) and compares: stale locks fail here."""
    uv = Path(sys.prefix) / "bin" / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed in this virtualenv (./dev installs it)")
    env = {**os.environ, "VENV": sys.prefix}
    done = subprocess.run([str(ROOT / "dev"), "lock", "--check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def test_the_repository_is_what_the_buildpack_accepts() -> None:
    assert buildpack.problems(ROOT) == []


def test_requires_python_admits_exactly_the_tested_versions() -> None:
    """pip refuses an untested Python (a platform default newer than CI ever ran) instead of guessing."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(PROJECT["requires-python"])
    tested = set(minors())
    candidates = {f"3.{n}" for n in range(8, 20)}
    assert {minor for minor in candidates if spec.contains(f"{minor}.0")} == tested
    assert tested == {"3.11", "3.12", "3.13"}
