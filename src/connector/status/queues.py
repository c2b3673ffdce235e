"""Dramatiq's Redis queues read from outside: ready, delayed, in flight, and the oldest message.

The Redis broker keeps, per queue ``q`` under its namespace: ``q`` a list of
message ids waiting, ``q.msgs`` a hash id → encoded message (kept until the
ack), ``q.DQ`` / ``q.DQ.msgs`` the same for delayed messages (retries, rate-limit
waits), ``__acks__.<worker>.q`` a set per worker of fetched, unacknowledged ids,
``__heartbeats__`` the workers, and ``q.XQ`` its own dead-letter queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec
import redis

from connector.status.report import QueueStatus

__all__ = ["SAMPLE", "queue_status"]

# Ids looked at per list or per ack set to find the oldest message: the front of a
# FIFO list holds its oldest, and reading every message of a big backlog would move
# megabytes on every page refresh.
SAMPLE = 50


class _Stamp(msgspec.Struct):
    message_timestamp: int = 0  # ms, set at the first enqueue and kept across retries


_stamp = msgspec.json.Decoder(_Stamp).decode


def _strings(values: Iterable[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def queue_status(
    client: redis.Redis,
    queue: str,
    *,
    dead_letters: int,
    now: float | None = None,
    namespace: str = "dramatiq",
) -> QueueStatus:
    """Counts of one queue read in one transaction, plus the age of its oldest outstanding message."""
    now = time.time() if now is None else now
    base, delayed = f"{namespace}:{queue}", f"{namespace}:{queue}.DQ"
    worker_ids = _strings(client.zrange(f"{namespace}:__heartbeats__", 0, -1))
    acks = [f"{namespace}:__acks__.{worker}.{queue}" for worker in worker_ids]
    delayed_acks = [f"{key}.DQ" for key in acks]
    with client.pipeline(transaction=True) as pipe:
        pipe.llen(base)
        pipe.hlen(f"{delayed}.msgs")
        pipe.zcard(f"{base}.XQ")
        pipe.lrange(base, 0, SAMPLE - 1)
        pipe.lrange(delayed, 0, SAMPLE - 1)
        for key in acks:
            pipe.scard(key)
        for key in acks + delayed_acks:
            pipe.srandmember(key, SAMPLE)
        ready, delayed_count, broker_dead, ready_head, delayed_head, *rest = pipe.execute()
    sizes, samples = rest[: len(acks)], rest[len(acks):]
    in_flight_ids = [i for sample in samples[: len(acks)] for i in _strings(sample)]
    delayed_ids = _strings(delayed_head) + [i for sample in samples[len(acks):] for i in _strings(sample)]
    stamps = _timestamps(client, f"{base}.msgs", _strings(ready_head) + in_flight_ids)
    stamps += _timestamps(client, f"{delayed}.msgs", delayed_ids)
    return QueueStatus(
        name=queue,
        ready=int(ready),
        delayed=int(delayed_count),
        in_flight=sum(int(size) for size in sizes),
        dead_letters=dead_letters,
        broker_dead=int(broker_dead),
        oldest_age_s=max(0.0, now - min(stamps) / 1000) if stamps else None,
    )


def _timestamps(client: redis.Redis, messages_key: str, ids: list[str]) -> list[int]:
    if not ids:
        return []
    stamps = []
    for raw in client.hmget(messages_key, sorted(set(ids))):
        if raw is None:  # acknowledged since the ids were read
            continue
        try:
            stamp = _stamp(raw).message_timestamp
        except msgspec.DecodeError:
            continue
        if stamp > 0:
            stamps.append(stamp)
    return stamps
