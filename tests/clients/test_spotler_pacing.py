"""Every Spotler call waits for the shared rate right before it is sent, against the real sandbox and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from connector import runtime
from connector.clients.spotler import SpotlerClient
from connector.errors import RateLimited
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.spotler import Contact
from connector.settings import Settings


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app()) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as http:
        http.post("/reset").raise_for_status()
        yield http


def base(server: BackgroundServer) -> str:
    return f"{server.url}/integrationservice-1.1.0"


def batch(n: int) -> list[Contact]:
    return [Contact(str(i), {"email": f"p{i}@example.nl"}) for i in range(n)]


def test_pace_runs_once_per_request_after_the_request_is_built(
    server: BackgroundServer, control: httpx.Client
) -> None:
    seen: list[int] = []

    def pace() -> None:
        # Called with the request built and signed, before it goes out: the sandbox has not seen it yet.
        seen.append(control.get("/requests").json()["total"])

    with SpotlerClient(base(server), DEFAULT_KEY, DEFAULT_SECRET, timeout=10, pace=pace) as client:
        client.properties()
        client.upsert_many(batch(100))
    assert seen == [0, 1]
    assert control.get("/requests").json()["total"] == 2


def test_a_refused_slot_sends_nothing(server: BackgroundServer, control: httpx.Client) -> None:
    def pace() -> None:
        raise RateLimited("no slot", retry_after=3.0)

    with (SpotlerClient(base(server), DEFAULT_KEY, DEFAULT_SECRET, timeout=10, pace=pace) as client,
          pytest.raises(RateLimited)):
        client.upsert_many(batch(3))
    assert control.get("/requests").json()["total"] == 0
    assert control.get("/contacts").json() == []


def test_runtime_client_with_redis_books_the_shared_spotler_rate(
    server: BackgroundServer, control: httpx.Client, redis_url: str, redis_client: redis.Redis
) -> None:
    settings = Settings.from_env({
        "REDIS_URL": redis_url, "SPOTLER_BASE_URL": base(server), "SPOTLER_KEY": DEFAULT_KEY,
        "SPOTLER_SECRET": DEFAULT_SECRET, "SPOTLER_RATE_PER_S": "4",
    })
    key = "connector:limits:rate:spotler"
    redis_client.delete(key)
    seconds, micros = redis_client.time()
    before_us = seconds * 1_000_000 + micros
    with runtime.spotler_client(settings, redis_client) as client:
        for _ in range(3):
            client.properties()
    # Three calls booked three slots of 250 ms each, the first no sooner than ``before_us``.
    booked_until = int(redis_client.get(key) or 0)
    assert booked_until - before_us >= 3 * 250_000
    assert control.get("/requests").json()["total"] == 3
    # Without Redis the client is not paced and books nothing.
    redis_client.delete(key)
    with runtime.spotler_client(settings) as unpaced:
        unpaced.properties()
    assert redis_client.get(key) is None
    assert control.get("/requests").json()["total"] == 4
