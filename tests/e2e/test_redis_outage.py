"""Redis killed (kill -9) mid initial sync and started again empty: every process rides it out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from tests.e2e.helpers import afas_expectation, spotler_contacts, spotler_values

from connector.sandbox.server import free_port
from connector.stack import RedisServer, Stack, wait_until
from connector.state.runs import RunHistory
from connector.workers.dead_letters import DeadLetterStore

pytestmark = pytest.mark.e2e

CONTACTS = 3000
OUTAGE_S = 10.0
TOKEN = "outage-status-token"
PRODUCERS = ("afas-producer", "spotler-producer")
WORKERS = ("spotler-worker", "afas-worker")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis").start()
    yield started
    started.kill()


def written(client: redis.Redis) -> int:
    try:
        return int(client.hget("connector:counters", "spotler_written") or 0)
    except redis.RedisError:
        return 0


def in_sync(stack: Stack, valid: dict[str, object]) -> bool:
    in_spotler = spotler_contacts(stack)
    return set(in_spotler) == set(valid) and all(
        spotler_values(c) == valid[cid].values for cid, c in in_spotler.items()  # type: ignore[attr-defined]
    )


def test_every_process_rides_out_a_redis_restart_mid_initial_sync(tmp_path: Path, server: RedisServer) -> None:
    client = server.client()
    port = free_port()
    # 2 Spotler requests (200 contacts) a second: the initial sync takes long enough to be cut.
    with Stack(tmp_path / "stack", redis_url=server.url, contacts=CONTACTS, seed=5,
               env={"POLL_INTERVAL_S": "2", "SPOTLER_RATE_PER_S": "2", "STATUS_TOKEN": TOKEN}) as stack:
        stack.start_sandboxes()
        valid, rejected = afas_expectation(stack)
        stack.start("spotler-worker", "work", "--queue", "spotler")
        stack.start("afas-worker", "work", "--queue", "afas")
        stack.start("afas-producer", "produce", "afas")
        stack.start("spotler-producer", "produce", "spotler")
        stack.start("web", "web", "--host", "127.0.0.1", "--port", str(port))
        web = f"http://127.0.0.1:{port}"
        wait_until(lambda: written(client) >= 400, timeout_s=180)

        server.kill()
        at_kill = len(spotler_contacts(stack))
        assert at_kill < len(valid), "the initial sync was still under way"
        time.sleep(OUTAGE_S)  # the outage itself
        assert httpx.get(f"{web}/healthz", timeout=30).text == "ok"
        down = httpx.get(f"{web}/status.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert down.status_code == 503
        assert "Redis unavailable" in down.json()["error"]
        assert all(p.alive() for p in stack.processes.values()), "a process exited during the outage"

        server.start()  # on the same port, empty: cursors, agreed state and queues are gone
        restarted = time.monotonic()
        resumed: dict[str, float] = {}
        for name in PRODUCERS:
            wait_until(lambda n=name: "Redis is back after" in stack.processes[n].output(),  # type: ignore[misc]
                       timeout_s=120)
            resumed[name] = time.monotonic() - restarted
        wait_until(lambda: written(client) > 0, timeout_s=120)
        resumed["workers writing"] = time.monotonic() - restarted
        wait_until(lambda: in_sync(stack, valid), timeout_s=600, interval_s=1.0)
        resumed["sync complete"] = time.monotonic() - restarted
        assert httpx.get(f"{web}/status.json", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=30).status_code == 200
        assert httpx.get(f"{web}/healthz", timeout=30).text == "ok"

        exited = {name: p.popen.returncode for name, p in stack.processes.items() if not p.alive()}
        assert exited == {}
        # The cursor was lost with the data: the AFAS producer read the whole GetConnector again.
        runs = RunHistory(client).latest("afas", limit=1000)
        full = [r for r in runs if r.cursor_from is None]
        assert full, "no AFAS poll from scratch after Redis lost its data"
        assert full[-1].read == len(valid) + len(rejected)
        assert DeadLetterStore(client).count() == 0
        logs = {name: stack.processes[name].output() for name in (*PRODUCERS, *WORKERS, "web")}

    print(f"contacts in Spotler at the kill: {at_kill} of {len(valid)}; after the restart: "
          + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in resumed.items()))
    for name in PRODUCERS:
        assert logs[name].count("Redis unavailable") == 1, logs[name][-3000:]
        assert logs[name].count("Redis is back after") == 1, logs[name][-3000:]
        assert "Traceback" not in logs[name], logs[name][-3000:]
    for name in WORKERS:
        assert "failed unexpectedly" not in logs[name], logs[name][-3000:]
        assert "dead-lettered" not in logs[name], logs[name][-3000:]
    assert logs["web"].count("web: Redis unavailable") == 1
    assert "Traceback" not in logs["web"]
