"""Dead letters owned by the service: what gave up, why, and how to send it again.

Dramatiq's own dead-letter queue (``<queue>.XQ``) keeps messages for a week
and then drops them; the connector keeps its dead letters in its own Redis
structure until an operator replays or purges them. A message whose letter
could not be written still lands in Dramatiq's XQ, and
``adopt_broker_dead_letters`` moves those into this store, so nothing is lost.

Layout (``ns`` defaults to ``connector:dlq``): ``ns:letters`` a hash id → letter
(JSON), ``ns:by_time`` a sorted set id → failed_at, ``ns:by_queue:<queue>`` the
same per queue, ``ns:queues`` the set of queue names seen.

A letter's payload names its contacts (``contacts_of``). Letters are kept
``RETENTION_DAYS`` (the retention sweep calls ``expire``); a forgotten contact
(``connector.state.tombstones``) is left out of a letter, and a letter with
nothing left is not stored.
"""

from __future__ import annotations

import builtins
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import dramatiq
import msgspec
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name

from connector.errors import ConnectorError
from connector.events import emit
from connector.redaction import redact
from connector.state.journal import DeadLettered, Journal, Replayed
from connector.state.tombstones import Tombstones

__all__ = [
    "DeadLetter",
    "DeadLetterStore",
    "Reason",
    "adopt_broker_dead_letters",
    "contacts_of",
    "error_text",
    "fresh_message",
    "letter_for_message",
    "payload_contacts",
    "replay",
]

log = logging.getLogger(__name__)

Reason = Literal["exhausted", "fatal", "expired", "orphaned"]

# Options that describe one delivery, not the work: a replay starts without them.
_TRANSIENT_OPTIONS = frozenset(
    {
        "retries", "rate_limited", "traceback", "requeue_timestamp", "eta",
        "redis_message_id", "replay_of",
    }
)
_ERROR_TEXT_MAX = 1000
_ORPHANED = "dead-lettered by the broker (unknown actor, or the dead-letter store was unreachable)"


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One message (or one item of a batch message) that the workers gave up on."""

    id: str
    queue: str
    actor: str
    message: dict[str, Any]  # the full Dramatiq message (Message.asdict), enough to send it again
    reason: Reason
    error_class: str
    error: str  # the last error, e-mail addresses masked
    attempts: int
    failed_at: float  # Unix seconds
    entity_key: str | None = None  # e.g. "contact:12345"
    source_message_id: str | None = None  # the message it came from, for item letters

    def __repr__(self) -> str:
        # The message holds personal data; a repr shows identifiers only.
        return (
            f"DeadLetter(id={self.id!r}, queue={self.queue!r}, actor={self.actor!r}, "
            f"reason={self.reason!r}, entity_key={self.entity_key!r}, attempts={self.attempts})"
        )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(DeadLetter).decode


def _payload(message: dict[str, Any]) -> Any:
    kwargs, args = message.get("kwargs") or {}, message.get("args") or []
    return kwargs.get("payload", args[0] if len(args) == 1 else None)


def contacts_of(letter: DeadLetter) -> builtins.list[str]:
    """The contacts a letter's payload names: one change (``contact_id``) or a batch (``changes``)."""
    return payload_contacts(_payload(letter.message))


def payload_contacts(payload: Any) -> builtins.list[str]:
    """The contacts a message payload (as builtins) names: one change or a batch's changes."""
    if not isinstance(payload, dict):
        return []
    if isinstance(payload.get("contact_id"), str):
        return [payload["contact_id"]]
    changes = payload.get("changes")
    if isinstance(changes, list):
        return [c["contact_id"] for c in changes if isinstance(c, dict) and isinstance(c.get("contact_id"), str)]
    return []


def _without(letter: DeadLetter, contact_ids: set[str]) -> DeadLetter | None:
    """The letter without the items of ``contact_ids``; None when nothing else is left in it."""
    named = contacts_of(letter)
    if not set(named) & contact_ids:
        return letter
    payload = _payload(letter.message)
    changes = payload.get("changes") if isinstance(payload, dict) else None
    if not isinstance(changes, list):
        return None
    kept = [c for c in changes if not (isinstance(c, dict) and c.get("contact_id") in contact_ids)]
    if not kept:
        return None
    ids = [c.get("contact_id") for c in kept]
    message = {**letter.message, "args": [], "kwargs": {**(letter.message.get("kwargs") or {}),
                                                        "payload": {**payload, "changes": kept}}}
    entity = f"contact:{ids[0]}" if len(ids) == 1 else f"contacts:{ids[0]}..{ids[-1]}({len(ids)})"
    return msgspec.structs.replace(letter, message=message, entity_key=entity)


def error_text(error: BaseException) -> str:
    """The error as stored and shown: its text plus detail, e-mail addresses masked, capped."""
    text = str(error)
    if isinstance(error, ConnectorError) and error.detail and error.detail not in text:
        text = f"{text} ({error.detail})"
    return redact(text)[:_ERROR_TEXT_MAX]


def letter_for_message(
    message: dramatiq.Message[Any] | Any,
    *,
    reason: Reason,
    error: BaseException | None,
    attempts: int,
    entity_key: str | None,
    letter_id: str | None = None,
    source_message_id: str | None = None,
) -> DeadLetter:
    """The letter of a whole message; its id is the message id, so a redelivery overwrites it."""
    data = message.asdict()
    data["args"] = list(data["args"])
    return DeadLetter(
        id=letter_id or message.message_id,
        queue=q_name(message.queue_name),
        actor=message.actor_name,
        message=data,
        reason=reason,
        error_class=type(error).__name__ if error is not None else "",
        error=error_text(error) if error is not None else "",
        attempts=attempts,
        failed_at=time.time(),
        entity_key=entity_key,
        source_message_id=source_message_id,
    )


class DeadLetterStore:
    """Dead letters in Redis, indexed by time and by queue."""

    def __init__(self, client: redis.Redis, *, namespace: str = "connector:dlq") -> None:
        self.client = client
        self.namespace = namespace
        self._letters = f"{namespace}:letters"
        self._by_time = f"{namespace}:by_time"
        self._queues = f"{namespace}:queues"

    def _by_queue(self, queue: str) -> str:
        return f"{self.namespace}:by_queue:{queue}"

    def _index(self, queue: str | None) -> str:
        return self._by_time if queue is None else self._by_queue(queue)

    def add(self, letter: DeadLetter) -> None:
        """Store (or overwrite) a letter, without the items of forgotten contacts; atomic."""
        forgotten = Tombstones(self.client).which(contacts_of(letter))
        kept = _without(letter, forgotten) if forgotten else letter
        if kept is None:
            log.info("dead letter %s not stored: its contacts are forgotten", letter.id)
            return
        self._store(kept)
        emit.dead_lettered(self.client, letter_id=kept.id, contacts=contacts_of(kept), queue=kept.queue,
                           reason=kept.reason, error_class=kept.error_class, attempts=kept.attempts)
        journal = Journal.for_process(self.client)
        if journal is not None:
            step = DeadLettered(letter_id=kept.id, queue=kept.queue, reason=kept.reason)
            journal.append((cid, step) for cid in contacts_of(kept))

    def _store(self, letter: DeadLetter) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self._letters, letter.id, _encode(letter))
            pipe.zadd(self._by_time, {letter.id: letter.failed_at})
            pipe.zadd(self._by_queue(letter.queue), {letter.id: letter.failed_at})
            pipe.sadd(self._queues, letter.queue)
            pipe.execute()

    def get(self, letter_id: str) -> DeadLetter | None:
        raw = self.client.hget(self._letters, letter_id)
        return None if raw is None else _decode(raw)

    def list(
        self, queue: str | None = None, limit: int = 50, *, offset: int = 0
    ) -> list[DeadLetter]:
        """Newest first, optionally one queue only."""
        if limit <= 0:
            return []
        ids = _strings(self.client.zrevrange(self._index(queue), offset, offset + limit - 1))
        if not ids:
            return []
        raws = self.client.hmget(self._letters, ids)
        return [_decode(raw) for raw in raws if raw is not None]

    def count(self, queue: str | None = None) -> int:
        return int(self.client.zcard(self._index(queue)))

    def counts(self) -> dict[str, int]:
        """Letters per queue (queues without letters left out)."""
        queues = sorted(_strings(self.client.smembers(self._queues)))
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(self._by_queue(queue))
            sizes = pipe.execute()
        return {queue: int(size) for queue, size in zip(queues, sizes, strict=True) if size}

    def remove(self, letter_id: str) -> bool:
        """Delete one letter; False when it was not there."""
        letter = self.get(letter_id)
        if letter is None:
            return False
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._letters, letter_id)
            pipe.zrem(self._by_time, letter_id)
            pipe.zrem(self._by_queue(letter.queue), letter_id)
            removed, *_ = pipe.execute()
        return bool(removed)

    def purge(self, queue: str | None = None) -> int:
        """Delete every letter (of one queue); returns how many."""
        removed = 0
        while True:
            ids = _strings(self.client.zrange(self._index(queue), 0, 499))
            if not ids:
                return removed
            removed += sum(self.remove(letter_id) for letter_id in ids)
            # A dangling index entry (letter already gone) must not loop forever.
            self.client.zrem(self._index(queue), *ids)

    def _all(self) -> Iterable[DeadLetter]:
        for _, raw in self.client.hscan_iter(self._letters, count=500):
            yield _decode(raw)

    def expire(self, before: float) -> int:
        """Delete letters that failed before ``before`` (Unix seconds); returns how many."""
        ids = _strings(self.client.zrangebyscore(self._by_time, "-inf", before))
        return sum(self.remove(letter_id) for letter_id in ids)

    def forget(self, contact_ids: Iterable[str]) -> int:
        """Take these contacts out of every letter (a letter left empty is deleted); returns the letters changed."""
        ids = set(contact_ids)
        changed = 0
        for letter in builtins.list(self._all()):
            if not set(contacts_of(letter)) & ids:
                continue
            kept = _without(letter, ids)
            if kept is None:
                self.remove(letter.id)
            else:
                self._store(kept)
            changed += 1
        return changed

    def resolve(self, prefix: str) -> builtins.list[str]:
        """Ids starting with ``prefix`` (what the CLI's short ids expand to)."""
        if self.client.hexists(self._letters, prefix):
            return [prefix]
        pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix) + "*"
        keys = (key for key, _ in self.client.hscan_iter(self._letters, match=pattern, count=500))
        return sorted(_strings(keys))


def _strings(values: Any) -> builtins.list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def fresh_message(letter: DeadLetter) -> dramatiq.Message[Any]:
    """The letter's message as a new delivery: new id and timestamp, retry count reset."""
    data = letter.message
    options = {k: v for k, v in data.get("options", {}).items() if k not in _TRANSIENT_OPTIONS}
    options["replay_of"] = letter.id
    return dramatiq.Message(
        queue_name=q_name(data["queue_name"]),
        actor_name=data["actor_name"],
        args=tuple(data.get("args", ())),
        kwargs=dict(data.get("kwargs", {})),
        options=options,
    )


def replay(
    broker: dramatiq.Broker, store: DeadLetterStore, letter: DeadLetter
) -> dramatiq.Message[Any]:
    """Send the letter through its original actor and queue again; remove it once enqueued."""
    journal = Journal.for_process(store.client)
    if journal is not None:  # before the enqueue: the replayed message's own steps come after this one
        journal.append((cid, Replayed(letter_id=letter.id)) for cid in contacts_of(letter))
    message = broker.enqueue(fresh_message(letter))
    store.remove(letter.id)
    log.info(
        "dead letter %s replayed as message %s on queue %s (actor %s, entity %s)",
        letter.id, message.message_id, letter.queue, letter.actor, letter.entity_key,
    )
    return message


def adopt_broker_dead_letters(
    broker: RedisBroker, store: DeadLetterStore, queues: Iterable[str] | None = None
) -> int:
    """Move messages from Dramatiq's own dead-letter queues into the store; returns how many."""
    client: redis.Redis = broker.client
    adopted = 0
    for queue in sorted(set(queues) if queues is not None else broker.get_declared_queues()):
        xq = f"{broker.namespace}:{q_name(queue)}.XQ"
        for redis_id, raw in client.hgetall(f"{xq}.msgs").items():
            try:
                message = dramatiq.Message.decode(raw if isinstance(raw, bytes) else raw.encode())
            except dramatiq.errors.DecodeError:
                log.error("undecodable message %r left in %s", redis_id, xq)
                continue
            letter = letter_for_message(
                message,
                reason="orphaned",
                error=None,
                attempts=int(message.options.get("retries", 0)) + 1,
                entity_key=None,
                letter_id=message.message_id or str(uuid.uuid4()),
            )
            store.add(msgspec.structs.replace(letter, error=_ORPHANED))
            with client.pipeline(transaction=True) as pipe:
                pipe.hdel(f"{xq}.msgs", redis_id)
                pipe.zrem(xq, redis_id)
                pipe.execute()
            adopted += 1
            log.warning(
                "message %s (actor %s) taken over from the broker's dead-letter queue %s",
                message.message_id, message.actor_name, queue,
            )
    return adopted
