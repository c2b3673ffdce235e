"""The dead-letter store, replay and the adoption of the broker's own dead letters."""

from __future__ import annotations

import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.errors import RecordRejected, RetriableError
from connector.workers.dead_letters import (
    DeadLetter,
    DeadLetterStore,
    adopt_broker_dead_letters,
    error_text,
    fresh_message,
    letter_for_message,
    replay,
)


def _unreachable() -> redis.Redis:
    """A real client whose server does not exist (fails at once, no retries)."""
    return redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))


EMAIL = "jan.jansen@example.com"


def _message(n: int, queue: str = "spotler", **options: object) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=queue,
        actor_name="upsert",
        args=(),
        kwargs={"payload": {"contact_id": str(n), "email": EMAIL}},
        options=dict(options),
    )


def _letter(n: int, queue: str = "spotler", failed_at: float | None = None) -> DeadLetter:
    letter = letter_for_message(
        _message(n, queue),
        reason="exhausted",
        error=RetriableError(f"HTTP 503 for {EMAIL}"),
        attempts=11,
        entity_key=f"contact:{n}",
    )
    if failed_at is None:
        return letter
    import msgspec

    return msgspec.structs.replace(letter, failed_at=failed_at)


def test_add_get_list_count_by_time_and_queue(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    now = time.time()
    letters = [_letter(1, "spotler", now - 30), _letter(2, "afas", now - 20), _letter(3, "spotler", now - 10)]
    for letter in letters:
        store.add(letter)

    assert store.count() == 3
    assert store.count("spotler") == 2
    assert store.counts() == {"afas": 1, "spotler": 2}
    assert [x.entity_key for x in store.list()] == ["contact:3", "contact:2", "contact:1"]
    assert [x.entity_key for x in store.list("spotler")] == ["contact:3", "contact:1"]
    assert [x.entity_key for x in store.list(limit=1, offset=1)] == ["contact:2"]
    assert store.get(letters[1].id) == letters[1]
    assert store.get("nope") is None


def test_add_twice_overwrites(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    letter = _letter(1)
    store.add(letter)
    store.add(letter)
    assert store.count() == 1


def test_remove_and_purge(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    letters = [_letter(n, "spotler" if n % 2 else "afas") for n in range(1, 8)]
    for letter in letters:
        store.add(letter)

    assert store.remove(letters[0].id) is True
    assert store.remove(letters[0].id) is False
    assert store.count("spotler") == 3
    assert store.purge("afas") == 3
    assert store.counts() == {"spotler": 3}
    assert store.purge() == 3
    assert store.count() == 0
    assert store.list() == []


def test_resolve_short_ids(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    letter = _letter(1)
    store.add(letter)
    assert store.resolve(letter.id[:8]) == [letter.id]
    assert store.resolve(letter.id) == [letter.id]
    assert store.resolve("zzzz") == []
    assert store.resolve("*") == []


def test_error_text_and_repr_hide_email_addresses() -> None:
    letter = _letter(1)
    assert EMAIL not in letter.error
    assert "<email>" in letter.error
    assert EMAIL not in repr(letter)
    assert EMAIL not in repr([letter])
    rejected = RecordRejected("invalid e-mail", detail=f"address {EMAIL} refused")
    assert error_text(rejected) == "invalid e-mail (address <email> refused)"
    assert len(error_text(ValueError("x" * 5000))) == 1000


def test_fresh_message_resets_delivery_state() -> None:
    original = _message(1, "spotler.DQ", retries=7, eta=1, redis_message_id="r", max_retries=2)
    letter = letter_for_message(
        original, reason="exhausted", error=None, attempts=8, entity_key="contact:1"
    )
    message = fresh_message(letter)
    assert message.queue_name == "spotler"
    assert message.actor_name == "upsert"
    assert message.kwargs == original.kwargs
    assert message.message_id != original.message_id
    assert message.options == {"max_retries": 2, "replay_of": letter.id}


def test_replay_enqueues_then_removes(redis_client: redis.Redis, broker: RedisBroker) -> None:
    store = DeadLetterStore(redis_client)
    letter = _letter(1)
    store.add(letter)

    sent = replay(broker, store, letter)

    assert store.get(letter.id) is None
    raw = redis_client.hget("dramatiq:spotler.msgs", sent.options["redis_message_id"])
    assert raw is not None
    queued = dramatiq.Message.decode(raw)
    assert queued.actor_name == "upsert"
    assert queued.kwargs == letter.message["kwargs"]


def test_replay_keeps_the_letter_when_enqueue_fails(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    letter = _letter(1)
    store.add(letter)
    unreachable = RedisBroker(client=_unreachable())
    try:
        replay(unreachable, store, letter)
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("enqueue on an unreachable broker must fail")
    assert store.get(letter.id) == letter


def test_adopt_moves_broker_dead_letters_into_the_store(
    redis_client: redis.Redis, broker: RedisBroker
) -> None:
    store = DeadLetterStore(redis_client)
    message = _message(5, retries=3)
    encoded = message.copy(options={"redis_message_id": "rid-5"}).encode()
    redis_client.hset("dramatiq:spotler.XQ.msgs", "rid-5", encoded)
    redis_client.zadd("dramatiq:spotler.XQ", {"rid-5": time.time() * 1000})

    assert adopt_broker_dead_letters(broker, store, ["spotler", "afas"]) == 1

    letter = store.get(message.message_id)
    assert letter is not None
    assert letter.reason == "orphaned"
    assert letter.attempts == 4
    assert letter.message["kwargs"] == message.kwargs
    assert redis_client.hlen("dramatiq:spotler.XQ.msgs") == 0
    assert redis_client.zcard("dramatiq:spotler.XQ") == 0
    assert adopt_broker_dead_letters(broker, store, ["spotler"]) == 0
