"""``connector work`` as a real OS process: signals, graceful stop, nothing lost."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, TimeLimit

from connector.redaction import RedactingFilter
from connector.stack import RedisServer, wait_until
from connector.workers.actor import send
from connector.workers.dead_letters import DeadLetterStore
from connector.workers.launcher import Launcher, ReconnectNoiseFilter, import_actor_modules
from connector.workers.middleware import ErrorPolicy
from connector.workers.testing_actors import (
    DONE,
    RELEASE,
    STARTED,
    TEST_QUEUE,
    Job,
    declare,
    run_job,
)

pytestmark = pytest.mark.e2e

JOBS = [f"slow-{n}" for n in range(6)]


def _work(redis_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "connector", "work",
        "--import", "connector.workers.testing_actors", *args,
    ]
    env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)


def _wait_for(condition: object, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, f"worker exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()}"
        time.sleep(0.05)  # poll interval


def _queued_jobs(client: redis.Redis) -> set[str]:
    ids = set()
    for key in (f"dramatiq:{TEST_QUEUE}.msgs", f"dramatiq:{TEST_QUEUE}.DQ.msgs"):
        for raw in client.hvals(key):
            ids.add(dramatiq.Message.decode(raw).kwargs["payload"]["id"])
    return ids


def _done(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(DONE).items()}


def test_sigterm_twice_finishes_in_flight_work_and_loses_nothing(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    for job_id in JOBS:
        send(run_job, Job(id=job_id, seconds=1.0))
    log = tmp_path / "worker.log"

    first = _work(redis_url, log, "--queue", TEST_QUEUE, "--threads", "2")
    _wait_for(lambda: redis_client.scard(STARTED) > 0, first, log)
    os.killpg(first.pid, signal.SIGTERM)
    os.killpg(first.pid, signal.SIGTERM)  # Heroku sometimes signals twice
    assert first.wait(timeout=25) == 0, log.read_text()

    output = log.read_text()
    assert "worker started: queues=testing threads=2" in output
    assert "worker stopping on SIGTERM" in output
    assert "worker stopped: queues=testing threads=2" in output
    assert "left for redelivery" not in output
    started = {m.decode() for m in redis_client.smembers(STARTED)}
    done = _done(redis_client)
    assert started <= set(done), "an in-flight message was cut off"
    assert set(done) | _queued_jobs(redis_client) == set(JOBS), "a message was lost"
    assert set(done).isdisjoint(_queued_jobs(redis_client))

    # A second worker picks up the rest; SIGINT stops it the same way.
    second = _work(redis_url, log, "--queue", TEST_QUEUE, "--threads", "3")
    _wait_for(lambda: len(_done(redis_client)) == len(JOBS), second, log)
    os.killpg(second.pid, signal.SIGINT)
    assert second.wait(timeout=25) == 0, log.read_text()
    assert _done(redis_client) == dict.fromkeys(JOBS, 1), "a message ran twice"
    assert _queued_jobs(redis_client) == set()


def test_a_queue_without_actors_is_refused(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    process = _work(redis_url, log, "--queue", "nonesuch")
    assert process.wait(timeout=60) == 1
    assert "no actor listens on queue(s) nonesuch" in log.read_text()


def test_stop_gives_up_on_a_message_that_outlasts_the_budget(
    broker: RedisBroker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    actors = declare(broker)
    send(actors.run_job, Job(id="stuck", hold=True))
    stop = threading.Event()
    launcher = Launcher(broker, [TEST_QUEUE], threads=1, stop_timeout_s=0.1, worker_timeout_ms=50)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(launcher.run(stop)))
    with caplog.at_level(logging.INFO, logger="connector.workers"):
        runner.start()
        deadline = time.monotonic() + 30
        while not redis_client.sismember(STARTED, "stuck"):
            assert time.monotonic() < deadline
            time.sleep(0.02)  # poll interval
        stop.set()
        runner.join(timeout=30)
    assert codes == [0]
    assert "in-flight messages left for redelivery" in caplog.text
    assert _done(redis_client) == {}
    assert _queued_jobs(redis_client) == {"stuck"}  # not acked: still the broker's

    redis_client.rpush(RELEASE + "stuck", 1)  # let the abandoned thread end
    deadline = time.monotonic() + 30
    while _queued_jobs(redis_client):
        assert time.monotonic() < deadline
        time.sleep(0.02)  # poll interval


def test_actor_modules_that_do_not_exist_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_actors.py").write_text("import no_such_dependency_of_actors\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = ("connector.workers.testing_actors", "connector.workers.no_such_actors")
    assert import_actor_modules(modules) == ["connector.workers.testing_actors"]
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_of_actors"):
        import_actor_modules(["broken_actors"])


def test_the_log_filter_masks_addresses_in_messages_and_tracebacks() -> None:
    try:
        raise ValueError("refused anna@example.org")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "dramatiq.worker", logging.ERROR, __file__, 1, "message %s failed", ("to anna@example.org",), exc_info
    )
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "anna@example.org" not in formatted
    assert "message to <email> failed" in formatted
    assert "ValueError: refused <email>" in formatted


def test_the_launcher_waits_for_redis_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path / "redis")  # not running yet
    client = server.client()
    broker = RedisBroker(client=client, middleware=[CurrentMessage(), ErrorPolicy(DeadLetterStore(client)),
                                                    TimeLimit()])
    actors = declare(broker)
    stop = threading.Event()
    launcher = Launcher(broker, [TEST_QUEUE], threads=1, worker_timeout_ms=50)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(launcher.run(stop)))
    try:
        with caplog.at_level(logging.INFO, logger="connector.workers"):
            runner.start()
            wait_until(lambda: "Redis unavailable" in caplog.text, timeout_s=30)
            assert runner.is_alive()
            server.start()
            wait_until(lambda: "worker started: queues=testing" in caplog.text, timeout_s=60)
            send(actors.run_job, Job(id="after-the-wait"))
            wait_until(lambda: _done(client) == {"after-the-wait": 1}, timeout_s=30)
            stop.set()
            runner.join(timeout=30)
    finally:
        stop.set()
        server.kill()
        broker.close()
    assert codes == [0]
    waiting = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(waiting) == 1
    assert waiting[0].levelno == logging.WARNING
    assert "Redis is back after" in caplog.text


def test_a_worker_process_started_without_redis_waits_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    log = tmp_path / "worker.log"
    try:
        waiting = _work(server.url, log, "--queue", TEST_QUEUE)
        _wait_for(lambda: "Redis unavailable" in log.read_text(), waiting, log)
        os.killpg(waiting.pid, signal.SIGTERM)
        assert waiting.wait(timeout=10) == 0, log.read_text()
        assert "worker stopped before it started" in log.read_text()

        starting = _work(server.url, log, "--queue", TEST_QUEUE)
        _wait_for(lambda: log.read_text().count("Redis unavailable") == 2, starting, log)
        server.start()
        _wait_for(lambda: "worker started: queues=testing" in log.read_text(), starting, log)
        os.killpg(starting.pid, signal.SIGTERM)
        assert starting.wait(timeout=25) == 0, log.read_text()
    finally:
        server.kill()
    assert "Traceback" not in log.read_text()


def test_consumer_reconnect_lines_are_collapsed_and_name_messages_by_id() -> None:
    noise = ReconnectNoiseFilter()

    def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
        return logging.LogRecord("dramatiq.worker.ConsumerThread(spotler)", logging.CRITICAL, __file__, 1, msg,
                                 args, (type(exc), exc, None) if exc else None)

    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    lines = [record("Consumer encountered a connection error: %s", refused) for _ in range(5)]
    assert [noise.filter(r) for r in lines] == [True, False, False, False, False]
    timed_out = record("Consumer encountered an unexpected error.", exc=redis.TimeoutError("Timeout reading"))
    assert noise.filter(timed_out)
    assert timed_out.exc_info is None
    assert timed_out.getMessage() == "Consumer encountered an unexpected error. (TimeoutError: Timeout reading)"
    other = logging.LogRecord("dramatiq.worker.WorkerThread", logging.INFO, __file__, 1, "Restarting consumer",
                              (), None)
    assert all(noise.filter(other) for _ in range(3))

    message = dramatiq.Message(queue_name="spotler", actor_name="upsert_batch", args=(),
                               kwargs={"payload": {"first_name": "Anna", "email": "anna@example.org"}}, options={})
    ack = record("Failed to post_process_message(%s) due to a connection error: %s", message, refused)
    assert RedactingFilter().filter(ack)
    assert ReconnectNoiseFilter().filter(ack)
    shown = logging.Formatter().format(ack)
    assert f"upsert_batch message {message.message_id}" in shown
    assert "Anna" not in shown
    assert "anna@" not in shown
