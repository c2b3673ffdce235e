"""collect() against real Redis: real Dramatiq queues, real stores, real limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import msgspec
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from connector.schemas.runs import PollResult
from connector.settings import Settings
from connector.state import keys
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.limits import ConcurrencyCap, RateLimiter
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory
from connector.status.collect import collect
from connector.status.queues import queue_status
from connector.status.report import StatusReport
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetter, DeadLetterStore

EMAIL = "marieke.devries@example.com"


@pytest.fixture
def broker(redis_client: redis.Redis) -> Iterator[RedisBroker]:
    from connector.workers.broker import build_broker

    fresh = build_broker(Settings.from_env())
    yield fresh
    fresh.close()


def settings(**env: str) -> Settings:
    return Settings.from_env({"REDIS_URL": "redis://unused", **env})


def message(queue: str, age_s: float, now: float) -> dramatiq.Message[None]:
    return dramatiq.Message(queue_name=queue, actor_name="upsert_batch", args=(), kwargs={"n": 1}, options={},
                            message_timestamp=int((now - age_s) * 1000))


def letter(n: int, queue: str = "spotler", error: str = "HTTP 503") -> DeadLetter:
    return DeadLetter(
        id=f"letter-{n}", queue=queue, actor="upsert_batch", message={"kwargs": {"email": EMAIL}},
        reason="fatal", error_class="RecordRejected", error=error, attempts=1, failed_at=1000.0 + n,
        entity_key=f"contact:{n}",
    )


def test_empty_redis_gives_zeros_and_never_polled_producers(redis_client: redis.Redis) -> None:
    report = collect(redis_client, settings())
    assert [(q.name, q.ready, q.delayed, q.in_flight, q.dead_letters, q.broker_dead, q.oldest_age_s)
            for q in report.queues] == [("spotler", 0, 0, 0, 0, 0, None), ("afas", 0, 0, 0, 0, 0, None)]
    assert [(p.source, p.running, p.cursor, p.lag_s) for p in report.producers] == [
        ("afas", False, None, None), ("spotler", False, None, None),
    ]
    assert report.runs == {"afas": [], "spotler": []}
    assert report.counters == {}
    assert (report.rejections.total, report.conflicts.total, report.dead_letters.total) == (0, 0, 0)
    assert [a.kind for a in report.alerts] == ["never_polled", "never_polled"]
    assert report.exit_code == 3


def test_ready_delayed_in_flight_and_the_oldest_message(redis_client: redis.Redis, broker: RedisBroker) -> None:
    now = time.time()
    for age in (50, 40, 30, 20, 10):
        broker.enqueue(message("spotler", age, now))
    broker.enqueue(message("spotler", 600, now), delay=3_600_000)  # a retry scheduled for later
    broker.enqueue(message("afas", 5, now))
    consumer = broker.consume("spotler", prefetch=2, timeout=100)
    assert next(consumer) is not None  # fetches two: both unacknowledged, in flight

    spotler = queue_status(redis_client, "spotler", dead_letters=0, now=now)
    assert (spotler.ready, spotler.delayed, spotler.in_flight, spotler.broker_dead) == (3, 1, 2, 0)
    assert spotler.oldest_age_s == pytest.approx(600, abs=0.01)
    afas = queue_status(redis_client, "afas", dead_letters=0, now=now)
    assert (afas.ready, afas.delayed, afas.in_flight) == (1, 0, 0)
    assert afas.oldest_age_s == pytest.approx(5, abs=0.01)
    consumer.close()


def test_in_flight_messages_count_for_the_oldest_age(redis_client: redis.Redis, broker: RedisBroker) -> None:
    now = time.time()
    broker.enqueue(message("spotler", 300, now))
    broker.enqueue(message("spotler", 10, now))
    consumer = broker.consume("spotler", prefetch=1, timeout=100)
    fetched = next(consumer)
    assert fetched is not None
    status = queue_status(redis_client, "spotler", dead_letters=0, now=now)
    assert (status.ready, status.in_flight) == (1, 1)
    assert status.oldest_age_s == pytest.approx(300, abs=0.01)
    # Acknowledged: gone from the queue, and the oldest is now the remaining one.
    consumer.ack(fetched)
    status = queue_status(redis_client, "spotler", dead_letters=0, now=now)
    assert (status.ready, status.in_flight) == (1, 0)
    assert status.oldest_age_s == pytest.approx(10, abs=0.01)
    consumer.close()


def test_broker_dead_letters_and_store_dead_letters_alert(redis_client: redis.Redis, broker: RedisBroker) -> None:
    now = time.time()
    broker.enqueue(message("afas", 1, now))
    consumer = broker.consume("afas", prefetch=1, timeout=100)
    fetched = next(consumer)
    assert fetched is not None
    consumer.nack(fetched)  # Dramatiq's own dead-letter queue
    consumer.close()
    store = DeadLetterStore(redis_client)
    store.add(letter(1, error=f"CONTACT_ALREADY_EXISTS for {EMAIL}"))
    store.add(letter(2))
    store.add(letter(3, "afas"))
    _poll(redis_client, "afas", now - 5)
    _poll(redis_client, "spotler", now - 5)

    report = collect(redis_client, settings(), now=now)
    by_name = {q.name: q for q in report.queues}
    assert (by_name["spotler"].dead_letters, by_name["spotler"].broker_dead) == (2, 0)
    assert (by_name["afas"].dead_letters, by_name["afas"].broker_dead, by_name["afas"].ready) == (1, 1, 0)
    assert report.dead_letters.total == 3
    assert report.dead_letters.by_queue == {"afas": 1, "spotler": 2}
    assert [v.id for v in report.dead_letters.latest] == ["letter-3", "letter-2", "letter-1"]
    assert report.dead_letters.latest[2].entity_key == "contact:1"
    assert [(a.kind, a.subject) for a in report.alerts] == [("dead_letters", "spotler"), ("dead_letters", "afas")]
    assert report.exit_code == 2
    # The payload is not in the report, and the error is masked.
    assert EMAIL.encode() not in msgspec.json.encode(report)
    assert "CONTACT_ALREADY_EXISTS" in report.dead_letters.latest[2].error


def _poll(client: redis.Redis, source: str, started_at: float, duration_s: float = 2.0, **counts: Any) -> PollResult:
    result = PollResult(run_id=f"{source}-{started_at:.0f}", source=source, started_at=started_at,
                        duration_s=duration_s, **counts)
    RunHistory(client).record(result)
    return result


def test_producers_runs_rejections_conflicts_limits_counters(redis_client: redis.Redis) -> None:
    now = time.time()
    for n in range(12):
        _poll(redis_client, "afas", now - 1000 + n * 10, read=100 + n, changed=n, unchanged=100, rejected=1)
    _poll(redis_client, "spotler", now - 2000, duration_s=4.0, read=7)
    CursorStore(redis_client, "afas").set(datetime(2024, 3, 31, 1, 30, tzinfo=UTC))
    redis_client.set(keys.producer_lock("afas"), "token", px=30_000)
    RejectionStore(redis_client).add_many([
        Rejection(contact_id="7", field="Email", reason="invalid e-mail address"),
        Rejection(contact_id="8", field="Email", reason="invalid e-mail address"),
        Rejection(contact_id="9", field="OrganisationId", reason="contact has no organisation"),
    ], now=now - 60)
    RejectionStore(redis_client).add_many([Rejection(contact_id="10", field="Email", reason="no e-mail address")],
                                          now=now - 30)
    ConflictStore(redis_client).add_many([
        Conflict(contact_id="42", field="email", afas_value=EMAIL, spotler_value="other@example.org",
                 agreed_value=None, rule="owner:afas", winner="afas", value=EMAIL),
    ], now=now - 10)
    for _ in range(3):
        RateLimiter(redis_client, "spotler", 1.0).reserve()
    cap = ConcurrencyCap(redis_client, "afas", 4)
    assert cap.try_acquire()[0]
    assert cap.try_acquire()[0]
    redis_client.hincrby(keys.COUNTERS, "spotler_written", 1234)
    redis_client.hincrby(keys.COUNTERS, "afas_calls", 5)

    report = collect(redis_client, settings(STATUS_MAX_LAG_S="1500", AFAS_MAX_PARALLEL="4"), now=now, runs=10,
                     latest=2)
    afas, spotler = report.producers
    assert (afas.running, afas.cursor, afas.last_run_id) == (True, "2024-03-31T01:30:00+00:00", f"afas-{now - 890:.0f}")
    assert afas.lag_s == pytest.approx(888, abs=0.01)  # the last poll started 890s ago and took 2s
    assert not spotler.running
    assert spotler.lag_s == pytest.approx(1996, abs=0.01)
    assert [(a.kind, a.subject) for a in report.alerts] == [("producer_lag", "spotler")]
    assert report.exit_code == 3
    assert [r.read for r in report.runs["afas"]] == [111, 110, 109, 108, 107, 106, 105, 104, 103, 102]
    assert [r.read for r in report.runs["spotler"]] == [7]
    assert report.rejections.total == 4
    assert report.rejections.by_reason == {"invalid e-mail address": 2, "contact has no organisation": 1,
                                           "no e-mail address": 1}
    assert report.rejections.latest[0].contact_id == "10"
    assert len(report.rejections.latest) == 2
    assert report.conflicts.total == 1
    assert report.conflicts.by_rule == {"owner:afas": 1}
    assert (report.conflicts.latest[0].contact_id, report.conflicts.latest[0].winner) == ("42", "afas")
    assert 0 < report.limits.spotler_booked_ahead_s <= 3.0
    assert (report.limits.spotler_rate_per_s, report.limits.afas_in_use, report.limits.afas_limit) == (5.0, 2, 4)
    assert report.counters == {"afas_calls": 5, "spotler_written": 1234}
    # Conflict values (here e-mail addresses) stay out of the report.
    assert EMAIL.encode() not in msgspec.json.encode(report)
    assert b"other@example.org" not in msgspec.json.encode(report)
    # The report survives a JSON round trip unchanged (what `status --json` and /status.json serve).
    assert msgspec.json.decode(msgspec.json.encode(report), type=StatusReport) == report
