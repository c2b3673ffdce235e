"""Worker fixtures: fresh brokers and real workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from connector.settings import Settings


@pytest.fixture
def broker(redis_client: redis.Redis) -> Iterator[RedisBroker]:
    """A fresh broker with the connector's middleware on a flushed Redis."""
    from connector.workers.broker import build_broker

    fresh = build_broker(Settings.from_env())
    yield fresh
    fresh.close()


@pytest.fixture
def start_worker(broker: RedisBroker) -> Iterator[Callable[..., dramatiq.Worker]]:
    """Start a real dramatiq.Worker (stopped at teardown)."""
    workers: list[dramatiq.Worker] = []

    def start(target: RedisBroker | None = None, threads: int = 2) -> dramatiq.Worker:
        worker = dramatiq.Worker(target or broker, worker_threads=threads, worker_timeout=50)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop(timeout=10_000)
