"""Fixtures of the events tests: events switched on, a consumer on a bus, RabbitMQ when there is one."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest

from connector.events.outbox import process_outbox_max
from connector.events.publisher import exchange, kombu_url


@pytest.fixture
def events_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process records events (EVENTS_URL set), as a worker with EVENTS_URL does."""
    monkeypatch.setenv("EVENTS_URL", "memory://")
    process_outbox_max.cache_clear()
    yield
    monkeypatch.delenv("EVENTS_URL")
    process_outbox_max.cache_clear()


LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@functools.cache
def _local_rabbitmq() -> str | None:
    """A RabbitMQ on this machine's default port that takes the default guest login, if any."""
    connection = kombu.Connection(LOCAL_RABBITMQ, connect_timeout=3)
    try:
        connection.ensure_connection(max_retries=1)
    except Exception:
        return None
    finally:
        connection.release()
    return LOCAL_RABBITMQ


@pytest.fixture
def rabbitmq_url() -> str:
    """RABBITMQ_URL, else a RabbitMQ running here on 127.0.0.1:5672 (guest login); skipped when neither."""
    url = os.environ.get("RABBITMQ_URL") or _local_rabbitmq()
    if not url:
        pytest.skip("no RabbitMQ: RABBITMQ_URL is not set and none answers on 127.0.0.1:5672 with the guest login "
                    "(set RABBITMQ_URL=amqp://user:password@host:5672//)")
    return url


@pytest.fixture
def redis_bus_url(redis_url: str) -> str:
    """The test Redis as a kombu bus (kombu's Redis transport)."""
    return kombu_url(redis_url)


class Consumer:
    """A durable queue bound to every event kind, declared before anything is published."""

    def __init__(self, url: str, name: str | None = None) -> None:
        self.connection = kombu.Connection(url)
        self.name = name or f"test-events-{uuid.uuid4().hex[:8]}"
        self.queue = kombu.Queue(self.name, exchange(), routing_key="#", durable=True)
        self.queue(self.connection.channel()).declare()

    def receive(self, wanted: set[str], timeout_s: float = 20.0) -> list[tuple[str, dict[str, Any]]]:
        """(message id, body) of every message until all ``wanted`` event ids came, or the timeout; then 1 s more."""
        got: list[tuple[str, dict[str, Any]]] = []

        def handle(body: dict[str, Any], message: kombu.Message) -> None:
            got.append((message.properties.get("message_id"), body))
            message.ack()

        with self.connection.Consumer(self.queue, callbacks=[handle], accept=["json"]):
            for waited in range(int(timeout_s * 10)):
                if wanted <= {body["event_id"] for _, body in got} and waited:
                    break
                try:
                    self.connection.drain_events(timeout=0.1)
                except TimeoutError:
                    continue
            while True:  # anything sent twice would be right behind
                try:
                    self.connection.drain_events(timeout=1)
                except TimeoutError:
                    break
        return got

    def close(self) -> None:
        try:
            self.queue(self.connection.channel()).delete()
        finally:
            self.connection.release()


@pytest.fixture
def consumer_on() -> Iterator[Any]:
    made: list[Consumer] = []

    def make(url: str, name: str | None = None) -> Consumer:
        made.append(Consumer(url, name))
        return made[-1]

    yield make
    for consumer in made:
        consumer.close()
