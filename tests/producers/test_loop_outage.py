"""The producer loop against a real redis-server that is killed and started again (empty)."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from connector import runtime
from connector.errors import AuthError
from connector.producers.loop import ProducerLock, run_loop
from connector.settings import Settings
from connector.stack import RedisServer, wait_until

EMAIL = "jan.jansen@example.com"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis").start()
    yield started
    started.kill()


class Running:
    """``run_loop`` on a thread; ``polls`` holds the monotonic time of each poll that got through."""

    def __init__(self, poll: Callable[[], object], lock: ProducerLock, **options: object) -> None:
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.lock = lock
        self.thread = threading.Thread(
            target=lambda: self.codes.append(run_loop(poll, lock, stop=self.stop, **options)),  # type: ignore[arg-type]
            daemon=True,
        )

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def counting(client: redis.Redis | None, polls: list[float]) -> Callable[[], None]:
    """A poll that needs Redis (when given a client) and records when it got through."""
    def poll() -> None:
        if client is not None:
            client.incr("polls")
        polls.append(time.monotonic())
    return poll


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_redis_restart_is_waited_out_with_one_line_each_way(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = server.client()
    polls: list[float] = []
    lock = ProducerLock(client, "afas", lease_s=3.0)
    with caplog.at_level(logging.INFO, logger="connector"), \
            Running(counting(client, polls), lock, interval_s=0.2) as running:
        wait_until(lambda: len(polls) >= 3, timeout_s=30)
        server.kill()
        killed = time.monotonic()
        wait_until(lambda: lines(caplog, "Redis unavailable"), timeout_s=30)
        time.sleep(4)  # the outage itself, longer than the lease
        assert running.thread.is_alive()
        server.start()
        restarted = time.monotonic()
        wait_until(lambda: polls and polls[-1] > restarted, timeout_s=60)
        resumed = polls[-1] - restarted
        assert int(client.get("polls") or 0) >= 1  # polled against the new, empty Redis
        assert client.get(lock.key) == lock.token.encode()  # the lease was taken again
    assert running.codes == [0]
    assert not [t for t in polls if killed < t < restarted]  # the poll needs Redis
    assert len(lines(caplog, "Redis unavailable")) == 1
    [back] = lines(caplog, "Redis is back after")
    assert back.levelno == logging.INFO
    assert resumed < 35, f"polling resumed {resumed:.1f}s after Redis came back"
    print(f"polling resumed {resumed:.1f}s after Redis came back")


def test_a_renewal_failing_for_less_than_the_lease_keeps_polling(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[float] = []
    lock = ProducerLock(server.client(), "afas", lease_s=8.0)
    with caplog.at_level(logging.INFO, logger="connector"), \
            Running(counting(None, polls), lock, interval_s=0.2) as running:
        wait_until(lambda: len(polls) >= 2, timeout_s=30)
        server.kill()
        killed = time.monotonic()
        wait_until(lambda: lines(caplog, "Redis unavailable"), timeout_s=30)  # a renewal failed
        time.sleep(2)  # the outage: shorter than what is left of the lease
        server.start()
        restarted = time.monotonic()
        wait_until(lambda: server.client().get(lock.key) == lock.token.encode(), timeout_s=30)
        wait_until(lambda: polls[-1] > restarted, timeout_s=30)
        assert running.thread.is_alive()
    during = [t for t in polls if killed < t < restarted]
    assert len(during) >= 5, "polling went on while the lease lasted"
    assert not lines(caplog, "lease ran out")
    assert lines(caplog, "was gone from Redis")  # the empty Redis had no key: taken again
    assert len(lines(caplog, "Redis unavailable")) == 1


def test_polling_pauses_once_the_lease_ran_out_and_resumes_with_redis(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[float] = []
    lock = ProducerLock(server.client(), "afas", lease_s=1.5)
    with caplog.at_level(logging.INFO, logger="connector"), \
            Running(counting(None, polls), lock, interval_s=0.1) as running:
        wait_until(lambda: len(polls) >= 2, timeout_s=30)
        server.kill()
        killed = time.monotonic()
        wait_until(lambda: lines(caplog, "lease ran out"), timeout_s=30)
        paused = time.monotonic()
        time.sleep(2)  # the rest of the outage
        server.start()
        restarted = time.monotonic()
        wait_until(lambda: polls[-1] > restarted, timeout_s=60)
        assert running.thread.is_alive()
    assert paused - killed < 1.5 + 1.0  # by its own clock, not Redis's
    assert not [t for t in polls if paused < t < restarted]
    assert len(lines(caplog, "Redis unavailable")) == 1
    assert lines(caplog, "Redis is back after")


def test_a_lease_taken_by_another_holder_pauses_until_it_is_released(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[float] = []
    lock = ProducerLock(redis_client, "afas", lease_s=1.5)
    with caplog.at_level(logging.INFO, logger="connector"), \
            Running(counting(redis_client, polls), lock, interval_s=0.1) as running:
        wait_until(lambda: len(polls) >= 2, timeout_s=30)
        redis_client.set(lock.key, "another-producer", px=60_000)  # e.g. after a split
        wait_until(lambda: lines(caplog, "held by another producer now"), timeout_s=30)
        paused = len(polls)
        time.sleep(1.5)  # an observation window: nothing polls while the other holds it
        assert len(polls) <= paused + 1  # at most the poll that was running
        redis_client.delete(lock.key)  # the other producer releases
        wait_until(lambda: len(polls) > paused + 2, timeout_s=30)
        assert redis_client.get(lock.key) == lock.token.encode()
        assert running.thread.is_alive()
    assert running.codes == [0]
    assert redis_client.get(lock.key) is None  # released on stop


def test_an_unexpected_exception_in_a_poll_is_retried_with_backoff(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[float] = []

    def poll() -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise ValueError(f"odd value for {EMAIL}")

    lock = ProducerLock(redis_client, "afas", lease_s=3.0)
    with caplog.at_level(logging.INFO, logger="connector"):
        code = run_loop(poll, lock, interval_s=0.1, max_polls=1, stop=threading.Event())
    assert code == 0
    assert len(attempts) == 4
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert [round(g) for g in gaps] == [1, 2, 4], gaps
    failures = lines(caplog, "poll failed unexpectedly")
    assert len(failures) == 3
    assert all(r.levelno == logging.ERROR and "ValueError: odd value for <email>" in r.getMessage() for r in failures)
    assert EMAIL not in caplog.text


def test_auth_errors_still_exit_2_and_no_wait_still_exits_3(redis_client: redis.Redis) -> None:
    def refused() -> None:
        raise AuthError("token refused")

    assert run_loop(refused, ProducerLock(redis_client, "afas"), interval_s=0.1, stop=threading.Event()) == 2
    assert redis_client.get(ProducerLock(redis_client, "afas").key) is None  # released
    redis_client.set(ProducerLock(redis_client, "spotler").key, "another-producer", px=60_000)
    code = run_loop(lambda: None, ProducerLock(redis_client, "spotler"), interval_s=0.1, wait_for_lock=False,
                    stop=threading.Event())
    assert code == 3
    assert redis_client.get(ProducerLock(redis_client, "spotler").key) == b"another-producer"


def test_redis_down_at_start_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path / "redis")  # not started yet
    polls: list[float] = []
    lock = ProducerLock(server.client(), "afas", lease_s=3.0)
    try:
        with caplog.at_level(logging.INFO, logger="connector"), \
                Running(counting(server.client(), polls), lock, interval_s=0.2, wait_for_lock=False) as running:
            wait_until(lambda: lines(caplog, "Redis unavailable"), timeout_s=30)
            server.start()
            wait_until(lambda: len(polls) >= 2, timeout_s=60)
            assert running.thread.is_alive()
    finally:
        server.kill()
    assert len(lines(caplog, "Redis unavailable")) == 1
    assert lines(caplog, "producer lock connector:lock:producer:afas acquired")


def test_every_client_fails_fast_on_a_server_that_stopped_answering(redis_url: str) -> None:
    from connector.workers.broker import build_broker

    settings = Settings.from_env({"REDIS_URL": redis_url})
    broker = build_broker(settings)
    try:
        for client in (runtime.redis_client(settings), broker.client):
            kwargs = client.connection_pool.connection_kwargs
            assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
                runtime.REDIS_SOCKET_TIMEOUT_S, runtime.REDIS_CONNECT_TIMEOUT_S)
            assert kwargs["health_check_interval"] == runtime.REDIS_HEALTH_CHECK_INTERVAL_S
            # Keep-alive is a TCP option; a Unix socket (the embedded Redis) has no such thing.
            assert kwargs.get("socket_keepalive") is (True if not redis_url.startswith("unix://") else None)
    finally:
        broker.close()
    # A peer that takes the connection and never answers (half-open, as after a failover).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = runtime.redis_client(Settings.from_env({"REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}"}))
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert time.monotonic() - started < runtime.REDIS_SOCKET_TIMEOUT_S + 5
