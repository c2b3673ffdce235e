"""``connector produce``: the process contract, run as a real process against both sandboxes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.producers.conftest import AfasSandbox, read_afas

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as create_afas
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as create_spotler
from connector.state.cursors import CursorStore
from connector.state.queues import outstanding
from connector.state.runs import RunHistory

CONTACTS = 50


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """(AFAS URL, Spotler URL) of two sandboxes on free ports."""
    with BackgroundServer(create_afas(contacts=CONTACTS, seed=8, token=DEFAULT_TOKEN)) as afas, \
            BackgroundServer(create_spotler()) as spotler:
        yield afas.url, spotler.url


@pytest.fixture
def env(servers: tuple[str, str], redis_url: str, tmp_path: Path) -> dict[str, str]:
    afas, spotler = servers
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AFAS_", "SPOTLER_", "CONNECTOR_"))}
    return {
        **inherited,
        "REDIS_URL": redis_url,
        "CONNECTOR_DATA_DIR": str(tmp_path),
        "AFAS_BASE_URL": f"{afas}/ProfitRestServices",
        "AFAS_TOKEN": DEFAULT_TOKEN,
        "SPOTLER_BASE_URL": f"{spotler}/integrationservice-1.1.0",
        "SPOTLER_KEY": DEFAULT_KEY,
        "SPOTLER_SECRET": DEFAULT_SECRET,
        "POLL_INTERVAL_S": "1",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def produce(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", "produce", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("source", ["afas", "spotler"])
def test_no_wait_exits_3_while_another_producer_holds_the_lock(
    env: dict[str, str], redis_client: redis.Redis, source: str
) -> None:
    lock = f"connector:lock:producer:{source}"
    redis_client.set(lock, "another-producer", px=120_000)

    done = produce(env, source, "--no-wait")

    assert done.returncode == 3, done.stderr
    assert lock in done.stderr
    assert redis_client.get(lock) == b"another-producer"  # the holder keeps its lease
    assert RunHistory(redis_client).latest(source) == []
    assert CursorStore(redis_client, source).get() is None


def test_once_polls_once_and_exits_0(
    env: dict[str, str], servers: tuple[str, str], redis_client: redis.Redis
) -> None:
    sandbox = AfasSandbox(servers[0])
    expected = read_afas(sandbox)
    sandbox.close()

    done = produce(env, "afas", "--once")

    assert done.returncode == 0, done.stderr
    [run] = RunHistory(redis_client).latest("afas")
    assert (run.read, run.changed, run.rejected) == (CONTACTS, len(expected.valid), len(expected.rejected))
    assert run.enqueued_messages == math.ceil(len(expected.valid) / 100) == outstanding(redis_client, "spotler")
    assert CursorStore(redis_client, "afas").get() is not None
    assert run.cursor_to == CursorStore(redis_client, "afas").get().isoformat()  # type: ignore[union-attr]
