"""End to end: ``connector publish-events`` as its own process, the bus stopped mid-run and started again.

On kombu's Redis transport the bus is a redis-server of our own that keeps its
data (append-only file), killed and started again on the same port. A RabbitMQ
server cannot be stopped from here: its outage is the publisher pointed at a
closed port, then started again with the real URL. Either way the consumer
receives every event of the run once per event id, in per-contact order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from tests.events.conftest import Consumer
from tests.events.test_publisher import check_received, scripted_run

from connector.events.outbox import Outbox
from connector.events.schemas import DomainEvent
from connector.sandbox.server import free_port
from connector.stack import ManagedProcess, RedisServer, connector_command, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop()


def publisher(redis_url: str, events_url: str, tmp_path: Path, name: str) -> ManagedProcess:
    env = {**os.environ, "REDIS_URL": redis_url, "EVENTS_URL": events_url, "PYTHONUNBUFFERED": "1",
           "CONNECTOR_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}
    return ManagedProcess(name, connector_command("publish-events"), env, tmp_path)


def declared(url: str) -> str:
    """The consumer's durable queue and binding, made before anything is published; its name."""
    consumer = Consumer(url)
    consumer.connection.release()
    return consumer.name


def in_batches(outbox: Outbox, events: list[DomainEvent]) -> None:
    for start in range(0, len(events), 7):  # as workers record them: a batch's worth at a time
        outbox.record(events[start:start + 7])


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis bus that keeps its data: kill -9 and start again lose nothing it acknowledged."""
    server = RedisServer(tmp_path / "bus", persistent=True).start()
    yield server
    server.kill()


def test_a_redis_bus_killed_and_started_again_mid_run_loses_nothing(
    bus: RedisServer, redis_client: redis.Redis, redis_url: str, tmp_path: Path, processes: list[ManagedProcess],
    consumer_on: Callable[[str, str], Consumer],
) -> None:
    queue = declared(bus.url)
    outbox = Outbox(redis_client)
    processes.append(publisher(redis_url, bus.url, tmp_path, "events"))
    first = scripted_run(contacts=6, per_contact=5)
    in_batches(outbox, first)
    wait_until(lambda: outbox.length() == 0, timeout_s=60)

    bus.kill()
    during = scripted_run(contacts=6, per_contact=10)
    in_batches(outbox, during)
    wait_until(lambda: "bus unavailable" in processes[0].output(), timeout_s=60)
    assert outbox.length() == len(during)  # waiting in the outbox, none lost

    bus.start()  # the same port and files
    last = scripted_run(contacts=6, per_contact=5)
    in_batches(outbox, last)
    wait_until(lambda: outbox.length() == 0, timeout_s=90)
    assert "bus is back" in processes[0].output()
    everything = [*first, *during, *last]
    check_received(consumer_on(bus.url, queue).receive({e.event_id for e in everything}), everything)


def test_rabbitmq_unreachable_then_reachable_loses_nothing(
    redis_client: redis.Redis, redis_url: str, rabbitmq_url: str, tmp_path: Path, processes: list[ManagedProcess],
    consumer_on: Callable[[str], Consumer],
) -> None:
    consumer = consumer_on(rabbitmq_url)
    outbox = Outbox(redis_client)
    processes.append(publisher(redis_url, rabbitmq_url, tmp_path, "events"))
    first = scripted_run(contacts=6, per_contact=5)
    in_batches(outbox, first)
    wait_until(lambda: outbox.length() == 0, timeout_s=60)
    processes[0].stop()

    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}//"  # nothing listens there
    processes.append(publisher(redis_url, closed, tmp_path, "events-unreachable"))
    during = scripted_run(contacts=6, per_contact=10)
    in_batches(outbox, during)
    wait_until(lambda: "bus unavailable" in processes[1].output(), timeout_s=60)
    assert outbox.length() == len(during)
    processes[1].stop()

    processes.append(publisher(redis_url, rabbitmq_url, tmp_path, "events-again"))
    last = scripted_run(contacts=6, per_contact=5)
    in_batches(outbox, last)
    wait_until(lambda: outbox.length() == 0, timeout_s=90)
    everything = [*first, *during, *last]
    check_received(consumer.receive({e.event_id for e in everything}), everything)
