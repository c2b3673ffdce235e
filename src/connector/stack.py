"""A whole connector on one machine: sandboxes, producers and workers as OS processes.

The demo, the end-to-end tests and the benchmarks all start the link this way,
so that what they show is what runs in production: separate processes that
share nothing but Redis and HTTP.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from connector.embedded_redis import EmbeddedRedis
from connector.sandbox.server import free_port

__all__ = ["ManagedProcess", "Stack", "wait_until"]


def wait_until(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s:.0f}s")
        time.sleep(interval_s)


class ManagedProcess:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.popen = subprocess.Popen(
            args, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._log.close()
        return code

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.alive():
            self.signal_group(signal.SIGTERM)
            code = self.wait(timeout_s)
            if code is None:
                self.signal_group(signal.SIGKILL)
                self.wait(5)
            return code
        return self.wait(0)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def connector_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "connector", *args]


class Stack:
    """Sandboxes + Redis + connector processes, torn down together."""

    def __init__(
        self,
        data_dir: Path,
        *,
        redis_url: str | None = None,
        contacts: int = 2000,
        seed: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.contacts = contacts
        self.seed = seed
        self._embedded: EmbeddedRedis | None = None
        if redis_url is None:
            self._embedded = EmbeddedRedis(self.data_dir / "redis")
            redis_url = self._embedded.ensure_running()
        self.redis_url = redis_url
        self.extra_env = dict(env or {})
        self.processes: dict[str, ManagedProcess] = {}
        self.afas_port = free_port()
        self.spotler_port = free_port()
        self.http = httpx.Client(timeout=60)

    # -- endpoints -------------------------------------------------------------
    @property
    def afas_url(self) -> str:
        return f"http://127.0.0.1:{self.afas_port}"

    @property
    def spotler_url(self) -> str:
        return f"http://127.0.0.1:{self.spotler_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        from connector.sandbox.afas.app import DEFAULT_TOKEN
        from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AFAS_", "SPOTLER_"))}
        env.update(
            REDIS_URL=self.redis_url,
            CONNECTOR_DATA_DIR=str(self.data_dir),
            AFAS_BASE_URL=f"{self.afas_url}/ProfitRestServices",
            AFAS_TOKEN=DEFAULT_TOKEN,
            SPOTLER_BASE_URL=f"{self.spotler_url}/integrationservice-1.1.0",
            SPOTLER_KEY=DEFAULT_KEY,
            SPOTLER_SECRET=DEFAULT_SECRET,
            POLL_INTERVAL_S="2",
            SPOTLER_RATE_PER_S="100",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    # -- processes -------------------------------------------------------------
    def start(self, name: str, *args: str, **env: str) -> ManagedProcess:
        if name in self.processes and self.processes[name].alive():
            raise RuntimeError(f"{name} is already running")
        proc = ManagedProcess(name, connector_command(*args), self.env(**env), self.log_dir)
        self.processes[name] = proc
        return proc

    def start_sandboxes(self) -> None:
        self.start(
            "afas-sandbox", "sandbox", "afas", "--port", str(self.afas_port),
            "--contacts", str(self.contacts), "--seed", str(self.seed),
        )
        self.start("spotler-sandbox", "sandbox", "spotler", "--port", str(self.spotler_port))
        for url, name in ((self.afas_url, "afas-sandbox"), (self.spotler_url, "spotler-sandbox")):
            wait_until(functools.partial(self._up, url, name), timeout_s=120)

    def _up(self, url: str, name: str) -> bool:
        if not self.processes[name].alive():
            raise RuntimeError(f"{name} exited:\n{self.processes[name].output()[-2000:]}")
        try:
            return self.http.get(f"{url}/_sandbox/requests").status_code == 200
        except httpx.TransportError:
            return False

    def afas(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._control(self.afas_url, method, path, **kwargs)

    def spotler(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._control(self.spotler_url, method, path, **kwargs)

    def _control(self, base: str, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{base}/_sandbox/{path.lstrip('/')}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def close(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop(timeout_s=30)
        self.http.close()
        if self._embedded is not None:
            self._embedded.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
