"""One wheel: ``python -m build`` of a fresh clone, installed into a new virtualenv, runs on its own.

Every command runs outside the source tree, from the wheel's virtualenv only: the version, both
sandboxes, ``connector doctor`` against them with the packaged example mapping, and ``connector
demo`` on the embedded Redis of the ``embedded`` extra.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from tests.deploy.venvs import ROOT, clean_env, lock_pins, make_venv, pip_install, report_sources

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.server import free_port
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.stack import ManagedProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"afas_spotler_connector-{VERSION}-py3-none-any.whl"
# Files the package reads at run time, which only package data carries into a wheel.
DATA = (
    "connector/data/mapping.example.toml",
    "connector/sandbox/afas/catalogue.json",
    "connector/sandbox/spotler/spotler-mailplus.swagger-1.2.json",
    "connector/py.typed",
)


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def answers(url: str, proc: ManagedProcess) -> bool:
    assert proc.alive(), proc.output()[-3000:]
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_the_wheel_runs_the_cli_the_sandboxes_doctor_and_the_demo(clone: Path, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "build", "--outdir", str(dist), str(clone)], cwd=tmp_path,
                env=clean_env(Path(sys.executable).parent), timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert sorted(p.name for p in dist.glob("*.whl")) == [WHEEL]
    names = zipfile.ZipFile(dist / WHEEL).namelist()
    assert [name for name in DATA if name not in names] == []
    assert not [name for name in names if name.startswith(("tests/", "bench/", "deploy/"))]
    timings["build"] = time.monotonic() - started

    # A clean virtualenv: the wheel with its embedded extra, held to the locked versions.
    started = time.monotonic()
    bin_dir = make_venv(sys.executable, tmp_path / "venv")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in lock_pins(ROOT / "requirements-dev.txt").items()))
    elsewhere = tmp_path / "elsewhere"  # no source tree around any command below
    elsewhere.mkdir()
    pip_install(bin_dir, "-c", str(constraints), f"{dist / WHEEL}[embedded]", cwd=elsewhere,
                report=tmp_path / "report.json")
    assert "archive_info" in report_sources(tmp_path / "report.json")["afas-spotler-connector"]
    timings["install"] = time.monotonic() - started
    connector = str(bin_dir / "connector")
    env = clean_env(bin_dir, {"CONNECTOR_DATA_DIR": str(elsewhere / ".connector"), "PYTHONUNBUFFERED": "1"},
                    drop=("REDIS_URL", "CONNECTOR_MAPPING"))
    env = {k: v for k, v in env.items() if not k.startswith(("AFAS_", "SPOTLER_"))}

    version = run([connector, "--version"], cwd=elsewhere, env=env, timeout=60)
    assert version.returncode == 0, version
    assert f"version {VERSION}" in version.stdout, version.stdout

    started = time.monotonic()
    afas_port, spotler_port = free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    sandboxes = [
        ManagedProcess("afas-sandbox", [connector, "sandbox", "afas", "--port", str(afas_port),
                                        "--contacts", "300", "--seed", "1"], env, logs),
        ManagedProcess("spotler-sandbox", [connector, "sandbox", "spotler", "--port", str(spotler_port)], env, logs),
    ]
    try:
        for proc, port in zip(sandboxes, (afas_port, spotler_port), strict=True):
            wait_until(functools.partial(answers, f"http://127.0.0.1:{port}/_sandbox/requests", proc), timeout_s=120)
        doctor_env = {
            **env,
            "AFAS_BASE_URL": f"http://127.0.0.1:{afas_port}/ProfitRestServices", "AFAS_TOKEN": DEFAULT_TOKEN,
            "SPOTLER_BASE_URL": f"http://127.0.0.1:{spotler_port}/integrationservice-1.1.0",
            "SPOTLER_KEY": DEFAULT_KEY, "SPOTLER_SECRET": DEFAULT_SECRET,
        }
        doctor = run([connector, "doctor"], cwd=elsewhere, env=doctor_env, timeout=300)
        assert doctor.returncode == 0, doctor.stdout[-4000:] + doctor.stderr[-4000:]
    finally:
        for proc in sandboxes:
            proc.stop()
    timings["sandboxes and doctor"] = time.monotonic() - started

    started = time.monotonic()
    demo = run([connector, "demo", "--contacts", "300"], cwd=elsewhere, env=env, timeout=900)
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert "redis     embedded" in demo.stdout, demo.stdout[-4000:]
    assert "demo finished" in demo.stdout, demo.stdout[-4000:]
    timings["demo"] = time.monotonic() - started
    print("wheel test, seconds: " + ", ".join(f"{step} {s:.1f}" for step, s in timings.items()))
