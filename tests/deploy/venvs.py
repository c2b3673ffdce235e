"""Interpreters, fresh virtualenvs and the environment of a process that sees nothing of ours."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# Variables that would let a child see the development virtualenv or the source tree.
_LEAKS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTEST_CURRENT_TEST")


def minor_of(python: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find_python(minor: str) -> str | None:
    """An interpreter of ``minor`` (e.g. "3.12"): on PATH, else one pyenv installed (as ./dev looks)."""
    if minor_of(sys.executable) == minor:
        return sys.executable
    on_path = [str(Path(d) / f"python{minor}") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    pyenv = sorted(glob.glob(f"{root}/versions/{minor}.*/bin/python{minor}"), reverse=True)
    for candidate in (*on_path, *pyenv):
        if os.access(candidate, os.X_OK) and minor_of(candidate) == minor:
            return candidate
    return None


def clean_env(bin_dir: Path, extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """os.environ with ``bin_dir`` first on PATH and no trace of the development virtualenv."""
    ours = {str(Path(sys.executable).parent), str(Path(sys.prefix) / "bin")}
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in ours]
    env = {k: v for k, v in os.environ.items() if k not in _LEAKS and k not in drop}
    env["PATH"] = os.pathsep.join([str(bin_dir), *path])
    env.update(extra or {})
    return env


def make_venv(python: str, where: Path) -> Path:
    """A new virtualenv with nothing but pip (and what the interpreter bundles); returns its bin/."""
    subprocess.run([python, "-m", "venv", str(where)], check=True, timeout=300)
    return where / "bin"


def pip_install(bin_dir: Path, *args: str, cwd: Path, report: Path) -> subprocess.CompletedProcess[str]:
    """``pip install ARGS`` as a build would run it, writing pip's JSON report of what it installed."""
    command = [str(bin_dir / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", "--report", str(report), *args]
    done = subprocess.run(command, cwd=cwd, env=clean_env(bin_dir), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def installed(bin_dir: Path) -> dict[str, str]:
    """Every distribution in the virtualenv of ``bin_dir``: canonical name -> version."""
    script = ("import importlib.metadata as m, json; "
              "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    out = subprocess.run([str(bin_dir / "python"), "-c", script], capture_output=True, text=True, check=True,
                         env=clean_env(bin_dir), timeout=60).stdout
    return {canonicalize_name(name): version for name, version in json.loads(out).items()}


def marker_env(python: str) -> dict[str, str]:
    """The environment markers of ``python`` that the locks' markers use."""
    script = ("import json, os, platform, sys; print(json.dumps({'python_version': '%d.%d' % sys.version_info[:2],"
              " 'python_full_version': platform.python_version(), 'os_name': os.name, 'sys_platform': sys.platform,"
              " 'platform_python_implementation': platform.python_implementation(),"
              " 'implementation_name': sys.implementation.name}))")
    env: dict[str, str] = json.loads(subprocess.run([python, "-c", script], capture_output=True, text=True,
                                                    check=True, timeout=60).stdout)
    return env


def lock_pins(lock: Path, environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """A lock's ``name==version`` lines (those whose marker holds in ``environment``, when given)."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text == ".":
            continue
        requirement = Requirement(text)
        if environment is not None and requirement.marker and not requirement.marker.evaluate(dict(environment)):
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", line
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def report_sources(report: Path) -> dict[str, dict[str, Any]]:
    """pip's install report: canonical name -> where pip took it from (``download_info``)."""
    data = json.loads(report.read_text())
    return {canonicalize_name(item["metadata"]["name"]): item["download_info"] for item in data["install"]}


def git_clone(source: Path, target: Path) -> Path:
    git = shutil.which("git")
    assert git is not None, "git is needed to clone the repository"
    subprocess.run([git, "clone", "--quiet", str(source), str(target)], check=True, timeout=300)
    return target
