"""A Redis restart while a worker holds a delayed retry: the retry still runs, without restarting the worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.errors import BrokerConnectionError

from connector.settings import Settings
from connector.stack import RedisServer, wait_until
from connector.workers import testing_actors
from connector.workers.actor import send
from connector.workers.broker import ConnectorBroker, RedisLost, build_broker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis", persistent=True).start()
    yield started
    started.kill()


def held_delayed(broker: ConnectorBroker) -> int:
    """Messages of the testing delay queue that this process has taken but not acknowledged."""
    client = broker.client
    return sum(int(client.scard(key)) for key in client.scan_iter("dramatiq:__acks__.*.testing.DQ"))


def broker_lost_redis(caplog: pytest.LogCaptureFixture) -> bool:
    """Dramatiq's consumer lost Redis: its own line, or ours when it restarts the consumer.

    Dramatiq's line may be collapsed: the CLI's reconnect-noise filter, once installed by an
    in-process CLI test, stays on pytest's shared capture handler and keeps one such line per minute.
    """
    return any(("connection error" in r.getMessage() and r.name.startswith("dramatiq"))
               or "restarted after losing Redis" in r.getMessage() for r in caplog.records)


def test_a_delayed_retry_held_in_memory_runs_after_redis_restarts(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = build_broker(Settings.from_env({"REDIS_URL": server.url}))
    assert isinstance(broker, ConnectorBroker)
    actors = testing_actors.declare(broker)
    client = broker.client
    worker = dramatiq.Worker(broker, queues={testing_actors.TEST_QUEUE}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        send(actors.run_job, testing_actors.Job(id="late"), delay_ms=8_000)
        wait_until(lambda: held_delayed(broker) == 1, timeout_s=30)  # the worker holds it, waiting for its eta
        first_id = broker.broker_id

        server.kill()
        # Down long enough that the consumers' fetches fail and Dramatiq restarts them.
        wait_until(lambda: broker_lost_redis(caplog), timeout_s=30)
        server.start()  # same port, same append-only file: every message is still there

        # Dramatiq drops the delayed message its restarted consumer held in memory; the new broker id lets
        # the heartbeat check hand it back, so it runs while the same worker keeps running.
        wait_until(lambda: client.hget(testing_actors.DONE, "late") is not None, timeout_s=120, interval_s=0.5)
        assert broker.broker_id != first_id
        assert int(client.hget(testing_actors.DONE, "late") or 0) >= 1
    finally:
        worker.stop(timeout=10_000)
        broker.close()


def test_retries_fall_due_while_redis_is_down_and_the_worker_still_delivers_them(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = build_broker(Settings.from_env({"REDIS_URL": server.url}))
    actors = testing_actors.declare(broker)
    client = broker.client
    worker = dramatiq.Worker(broker, queues={testing_actors.TEST_QUEUE}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        send(actors.run_job, testing_actors.Job(id="due-while-down"), delay_ms=3_000)
        wait_until(lambda: held_delayed(broker) == 1, timeout_s=30)
        server.kill()  # the retry falls due while Redis is down: putting it back on its queue fails
        wait_until(lambda: broker_lost_redis(caplog), timeout_s=30)
        time.sleep(4)  # past the retry's eta, with Redis still down: that is the point of this test
        server.start()
        wait_until(lambda: client.hget(testing_actors.DONE, "due-while-down") is not None, timeout_s=120,
                   interval_s=0.5)
        # The thread that delivers delayed messages survived: a new retry is delivered too.
        assert all(thread.is_alive() for thread in worker.consumers.values())
        send(actors.run_job, testing_actors.Job(id="after"), delay_ms=1_000)
        wait_until(lambda: client.hget(testing_actors.DONE, "after") is not None, timeout_s=60, interval_s=0.2)
    finally:
        worker.stop(timeout=10_000)
        broker.close()


def test_a_broker_command_that_loses_redis_raises_what_dramatiqs_consumers_reconnect_on(
    server: RedisServer,
) -> None:
    # Dramatiq's consumer threads reconnect on their own connection error only; a redis error raised while
    # putting a due retry back (enqueue) or handing messages back (requeue) would end the thread instead.
    broker = build_broker(Settings.from_env({"REDIS_URL": server.url}))
    actors = testing_actors.declare(broker)
    server.kill()
    try:
        for attempt in (lambda: send(actors.run_job, testing_actors.Job(id="x")),
                        lambda: broker.do_requeue(testing_actors.TEST_QUEUE, "some-id")):
            with pytest.raises(RedisLost) as raised:
                attempt()
            assert isinstance(raised.value, BrokerConnectionError)
            assert isinstance(raised.value, redis.RedisError)
    finally:
        server.start()
        broker.close()
