"""Idempotency claims, leases and done marks in real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from connector.errors import RetriableError
from connector.workers.idempotency import ClaimOutcome, IdempotencyStore, event_key


def test_claim_done_and_busy(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client, ttl_s=60)
    first = store.claim("afas:contact:1:abc", lease_s=60)
    assert first.outcome is ClaimOutcome.FRESH
    assert first.token

    busy = store.claim("afas:contact:1:abc", lease_s=60)
    assert busy.outcome is ClaimOutcome.BUSY
    assert busy.retry_after is not None
    assert 0 < busy.retry_after <= 60

    store.done(first)
    assert store.claim("afas:contact:1:abc").outcome is ClaimOutcome.DONE
    assert store.is_done("afas:contact:1:abc")
    assert store.release("afas:contact:1:abc") is False  # a done mark is never released
    assert store.claim("afas:contact:1:abc").outcome is ClaimOutcome.DONE


def test_release_after_a_failed_write_lets_the_next_claim_in(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client)
    claim = store.claim("k")
    assert store.release(claim) is True
    assert store.claim("k").outcome is ClaimOutcome.FRESH


def test_a_stale_claim_cannot_release_another_workers_lease(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client)
    stale = store.claim("k", lease_s=0.05)
    deadline = time.monotonic() + 10
    while (current := store.claim("k", lease_s=60)).outcome is not ClaimOutcome.FRESH:
        assert time.monotonic() < deadline, "lease never expired"
    assert store.release(stale) is False
    assert store.claim("k").outcome is ClaimOutcome.BUSY
    assert store.release(current) is True


def test_an_expired_lease_can_be_claimed_again(redis_client: redis.Redis) -> None:
    """A worker killed after its claim: the lease runs out and a redelivery may write."""
    store = IdempotencyStore(redis_client)
    assert store.claim("k", lease_s=0.05).outcome is ClaimOutcome.FRESH
    deadline = time.monotonic() + 10
    while store.claim("k", lease_s=60).outcome is ClaimOutcome.BUSY:
        assert time.monotonic() < deadline, "lease never expired"


def test_only_one_of_many_concurrent_claims_wins(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client)
    barrier = threading.Barrier(8)
    outcomes: list[ClaimOutcome] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        outcome = store.claim("race").outcome
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) == ["busy"] * 7 + ["fresh"]


def test_run_once(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client)
    writes: list[int] = []
    assert store.run_once("k", lambda: writes.append(1)) is True
    assert store.run_once("k", lambda: writes.append(2)) is False
    assert writes == [1]

    def failing() -> None:
        raise RetriableError("503")

    with pytest.raises(RetriableError):
        store.run_once("j", failing)
    assert store.run_once("j", lambda: writes.append(3)) is True  # released after the failure
    assert writes == [1, 3]

    store.claim("held", lease_s=60)
    with pytest.raises(RetriableError) as raised:
        store.run_once("held", lambda: writes.append(4))
    assert raised.value.retry_after is not None
    assert writes == [1, 3]


def test_done_marks_expire_after_the_ttl(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client, ttl_s=30)
    store.done("k")
    assert 0 < redis_client.pttl("connector:idem:k") <= 30_000


def test_event_key_is_stable_and_content_sensitive() -> None:
    a = event_key("afas", "contact:1", {"b": 1, "a": "x", "modified": "2024-05-01T10:00:00"})
    b = event_key("afas", "contact:1", {"modified": "2024-05-01T10:00:00", "a": "x", "b": 1})
    c = event_key("afas", "contact:1", {"b": 2, "a": "x", "modified": "2024-05-01T10:00:00"})
    assert a == b != c
    assert a.startswith("afas:contact:1:")
