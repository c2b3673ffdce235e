"""The retry policy with a real broker, real worker threads and real Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import msgspec
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, TimeLimit, TimeLimitExceeded
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.stack import RedisServer, wait_until
from connector.workers.actor import connector_actor, message_for, send
from connector.workers.dead_letters import DeadLetterStore, adopt_broker_dead_letters, replay
from connector.workers.middleware import ErrorPolicy
from connector.workers.testing_actors import ATTEMPTS, DONE, TEST_QUEUE, Batch, Job, declare


def _unreachable() -> redis.Redis:
    """A real client whose server does not exist (fails at once, no retries)."""
    return redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))


EMAIL = "piet@example.com"
StartWorker = Callable[..., dramatiq.Worker]


def _run(broker: RedisBroker, start_worker: StartWorker) -> None:
    worker = start_worker(broker)
    broker.join(TEST_QUEUE, timeout=30_000)
    worker.join()


def _policy_log(caplog: pytest.LogCaptureFixture) -> str:
    records = [r for r in caplog.records if r.name == "connector.workers"]
    return "\n".join(r.getMessage() + (r.exc_text or "") for r in records)


def _attempts(client: redis.Redis, job_id: str) -> int:
    return int(client.hget(ATTEMPTS, job_id) or 0)


def _done(client: redis.Redis, job_id: str) -> int:
    return int(client.hget(DONE, job_id) or 0)


def test_success_is_acked_once(broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    actors = declare(broker)
    for n in range(5):
        send(actors.run_job, Job(id=str(n)))
    _run(broker, start_worker)
    assert [_done(redis_client, str(n)) for n in range(5)] == [1] * 5
    assert DeadLetterStore(redis_client).count() == 0


def test_retriable_error_is_retried_until_it_succeeds(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker, max_retries=3)
    send(actors.run_job, Job(id="r", fail="retriable", times=2))
    _run(broker, start_worker)
    assert _attempts(redis_client, "r") == 3
    assert _done(redis_client, "r") == 1
    assert DeadLetterStore(redis_client).count() == 0


def test_exhausted_retries_become_a_dead_letter(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    actors = declare(broker, max_retries=2)
    sent = send(actors.run_job, Job(id="x", fail="retriable", note=EMAIL))
    with caplog.at_level(logging.DEBUG):
        _run(broker, start_worker)

    assert _attempts(redis_client, "x") == 3
    letters = DeadLetterStore(redis_client).list()
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.id, letter.reason, letter.attempts) == (sent.message_id, "exhausted", 3)
    assert (letter.queue, letter.actor, letter.entity_key) == (TEST_QUEUE, "run_job", "job:x")
    assert letter.error_class == "RetriableError"
    assert "<email>" in letter.error
    assert EMAIL not in letter.error
    policy_lines = _policy_log(caplog)
    assert EMAIL not in policy_lines
    assert "dead-lettered (exhausted)" in policy_lines
    assert redis_client.zcard(f"dramatiq:{TEST_QUEUE}.XQ") == 0


def test_unexpected_exceptions_are_retried_and_logged_without_payload(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    actors = declare(broker, max_retries=1)
    send(actors.run_job, Job(id="c", fail="crash", note=EMAIL))
    with caplog.at_level(logging.DEBUG, logger="connector"):
        _run(broker, start_worker)
    assert _attempts(redis_client, "c") == 2
    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.reason, letter.error_class) == ("exhausted", "ValueError")
    policy_lines = _policy_log(caplog)
    assert "failed unexpectedly" in policy_lines
    assert EMAIL not in policy_lines


def test_fatal_error_is_dead_lettered_without_retry(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker, max_retries=5)
    send(actors.run_job, Job(id="f", fail="fatal"))
    _run(broker, start_worker)
    assert _attempts(redis_client, "f") == 1
    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.reason, letter.attempts, letter.error_class) == ("fatal", 1, "FatalError")


def test_invalid_payload_is_fatal(broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    actors = declare(broker)
    actors.run_job.send_with_options(kwargs={"payload": {"id": 12}})
    _run(broker, start_worker)
    [letter] = DeadLetterStore(redis_client).list()
    assert letter.reason == "fatal"
    assert "not a valid Job" in letter.error


def test_rate_limits_do_not_burn_the_retry_budget(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker, max_retries=0)
    send(actors.run_job, Job(id="rl", fail="rate_limited", times=3, retry_after=0.01))
    _run(broker, start_worker)
    assert _attempts(redis_client, "rl") == 4
    assert _done(redis_client, "rl") == 1
    assert DeadLetterStore(redis_client).count() == 0


def test_skippable_error_is_acked(broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    actors = declare(broker, max_retries=5)
    send(actors.run_job, Job(id="s", fail="skip"))
    _run(broker, start_worker)
    assert _attempts(redis_client, "s") == 1
    assert DeadLetterStore(redis_client).count() == 0
    assert redis_client.hlen(f"dramatiq:{TEST_QUEUE}.msgs") == 0


def test_expired_message_is_dead_lettered_unrun(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    actors = declare(broker, max_age=60_000)
    old = message_for(actors.run_job, Job(id="old", note=EMAIL))
    old = old.copy(message_timestamp=old.message_timestamp - 3_600_000)
    broker.enqueue(old)
    send(actors.run_job, Job(id="new"))
    with caplog.at_level(logging.INFO):
        _run(broker, start_worker)
    assert "dead-lettered (expired)" in caplog.text
    assert EMAIL not in caplog.text  # Dramatiq's own lines included
    assert redis_client.zcard(f"dramatiq:{TEST_QUEUE}.XQ") == 0
    assert _attempts(redis_client, "old") == 0
    assert _done(redis_client, "new") == 1
    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.reason, letter.entity_key, letter.attempts) == ("expired", "job:old", 0)


def test_replay_runs_the_message_again_with_a_fresh_retry_count(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker, max_retries=1)
    # Fails its first three attempts: two are used up, the replay gets two more.
    send(actors.run_job, Job(id="p", fail="retriable", times=3))
    worker = start_worker(broker)
    broker.join(TEST_QUEUE, timeout=30_000)
    worker.join()
    store = DeadLetterStore(redis_client)
    [letter] = store.list()

    replay(broker, store, letter)
    broker.join(TEST_QUEUE, timeout=30_000)
    worker.join()

    assert _attempts(redis_client, "p") == 4
    assert _done(redis_client, "p") == 1
    assert store.count() == 0


def test_batch_items_are_dead_lettered_one_by_one(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker)
    jobs = [Job(id="b1"), Job(id="b2", fail="fatal", times=1), Job(id="b3"), Job(id="b4", fail="fatal")]
    batch = send(actors.run_batch, Batch(jobs=jobs))
    worker = start_worker(broker)
    broker.join(TEST_QUEUE, timeout=30_000)
    worker.join()

    assert [_done(redis_client, j) for j in ("b1", "b2", "b3", "b4")] == [1, 0, 1, 0]
    store = DeadLetterStore(redis_client)
    letters = {letter.entity_key: letter for letter in store.list()}
    assert set(letters) == {"job:b2", "job:b4"}
    assert {letter.source_message_id for letter in letters.values()} == {batch.message_id}
    assert letters["job:b2"].message["kwargs"]["payload"]["jobs"] == [
        msgspec.to_builtins(jobs[1])
    ]

    # Replaying the item re-runs that one job only (its failure was transient).
    replay(broker, store, letters["job:b2"])
    broker.join(TEST_QUEUE, timeout=30_000)
    worker.join()
    assert [_done(redis_client, j) for j in ("b1", "b2", "b3", "b4")] == [1, 1, 1, 0]
    assert [letter.entity_key for letter in store.list()] == ["job:b4"]


def test_positional_payload_is_accepted(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    actors = declare(broker)
    actors.run_job.send({"id": "pos", "unknown_field": "tolerated"})
    _run(broker, start_worker)
    assert _done(redis_client, "pos") == 1


def test_unwritable_dead_letter_falls_back_to_the_broker_and_is_adopted(
    redis_url: str, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    unreachable = DeadLetterStore(_unreachable())
    client = redis.Redis.from_url(redis_url)
    broker = RedisBroker(
        client=client, middleware=[CurrentMessage(), ErrorPolicy(unreachable, redis_wait_s=0), TimeLimit()]
    )
    actors = declare(broker)
    sent = send(actors.run_job, Job(id="u", fail="fatal"))
    _run(broker, start_worker)

    assert redis_client.zcard(f"dramatiq:{TEST_QUEUE}.XQ") == 1
    store = DeadLetterStore(redis_client)
    assert adopt_broker_dead_letters(broker, store, [TEST_QUEUE]) == 1
    [letter] = store.list()
    assert (letter.id, letter.reason) == (sent.message_id, "orphaned")


def test_unknown_actor_is_adopted(broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    declare(broker)
    broker.enqueue(
        dramatiq.Message(queue_name=TEST_QUEUE, actor_name="gone", args=(), kwargs={}, options={})
    )
    _run(broker, start_worker)
    assert adopt_broker_dead_letters(broker, DeadLetterStore(redis_client), [TEST_QUEUE]) == 1
    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.actor, letter.reason) == ("gone", "orphaned")


def test_a_time_limit_interrupt_counts_as_a_failed_attempt(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    calls: list[str] = []

    @connector_actor(queue_name=TEST_QUEUE, payload=Job, broker=broker, max_retries=1, min_backoff=10)
    def too_slow(job: Job) -> None:
        calls.append(job.id)
        raise TimeLimitExceeded("time limit exceeded")  # what TimeLimit injects into the thread

    send(too_slow, Job(id="t"))
    _run(broker, start_worker)
    assert calls == ["t", "t"]
    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.reason, letter.error_class, letter.attempts) == ("exhausted", "TimeLimitExceeded", 2)


class Ping(msgspec.Struct, frozen=True):
    id: str


@pytest.fixture
def outage_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def test_a_message_failing_while_redis_is_down_is_retried_once_it_is_back(
    outage_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = outage_server.client()
    broker = RedisBroker(client=client, middleware=[CurrentMessage(), ErrorPolicy(DeadLetterStore(client)),
                                                    TimeLimit()])
    running, go_on = threading.Event(), threading.Event()
    attempts: list[str] = []
    done: list[str] = []

    @connector_actor(queue_name="outage", payload=Ping, broker=broker, min_backoff=10, max_backoff=50,
                     entity_key=lambda ping: f"ping:{ping.id}")
    def ping(payload: Ping) -> None:
        attempts.append(payload.id)
        if len(attempts) == 1:
            running.set()
            go_on.wait(30)  # the test kills Redis meanwhile
        client.incr("pings")  # Redis went away under the actor: a redis.ConnectionError
        done.append(payload.id)

    send(ping, Ping(id="1"))
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        with caplog.at_level(logging.INFO):
            assert running.wait(30)
            outage_server.kill()
            go_on.set()
            wait_until(lambda: "Redis unavailable" in caplog.text, timeout_s=30)
            time.sleep(3)  # the outage itself
            outage_server.start()
            wait_until(lambda: done == ["1"], timeout_s=60)
            broker.join("outage", timeout=30_000)
    finally:
        worker.stop(timeout=10_000)
        broker.close()
    assert attempts == ["1", "1"]
    assert DeadLetterStore(client).count() == 0
    assert client.zcard("dramatiq:outage.XQ") == 0
    policy = [r for r in caplog.records if r.name == "connector.workers"]
    [failed] = [r for r in policy if "Redis unavailable" in r.getMessage()]
    assert failed.levelno == logging.WARNING
    assert "entity ping:1" in failed.getMessage()
    assert not failed.exc_info
    assert not [r for r in policy if r.levelno >= logging.ERROR]
    assert any("Redis answered again after" in r.getMessage() for r in policy)


@pytest.mark.parametrize("fail", ["retriable", "rate_limited"])
def test_a_huge_retry_after_is_capped_at_seven_days_not_an_overflow(
    broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker, fail: str
) -> None:
    actors = declare(broker, max_retries=3)
    sent = send(actors.run_job, Job(id="huge", fail=fail, retry_after=1e306))
    start_worker(broker)
    delayed = f"dramatiq:{TEST_QUEUE}.DQ.msgs"
    wait_until(lambda: redis_client.hlen(delayed) == 1, timeout_s=30)
    [raw] = redis_client.hvals(delayed)
    message = dramatiq.Message.decode(raw)
    assert message.message_id == sent.message_id
    week_ms = 7 * 86_400_000
    assert week_ms - 120_000 < int(message.options["eta"]) - int(time.time() * 1000) <= week_ms
    assert redis_client.zcard(f"dramatiq:{TEST_QUEUE}.XQ") == 0  # not failed to the broker's dead letters
    assert DeadLetterStore(redis_client).count() == 0
