"""Shared fixtures: a real Redis (REDIS_URL, or an embedded server) for every test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connector.embedded_redis import EmbeddedRedis

_SERVER = pytest.StashKey[EmbeddedRedis]()


def pytest_configure(config: pytest.Config) -> None:
    # The broker module builds the global broker from REDIS_URL at import time, during
    # collection, before any fixture runs: without REDIS_URL, start an embedded Redis now.
    if os.environ.get("REDIS_URL"):
        return
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="connector-test-redis-")))
    os.environ["REDIS_URL"] = server.ensure_running()
    config.stash[_SERVER] = server


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()
        os.environ.pop("REDIS_URL", None)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_URL when set (the suite flushes that database), else the embedded server."""
    return os.environ["REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()
