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

from connector.workers.actor import send
from connector.workers.launcher import Launcher, RedactingFilter, import_actor_modules
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
