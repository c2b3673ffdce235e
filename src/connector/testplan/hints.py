"""What to tell the operator when the link does not react: which of its processes look absent."""

from __future__ import annotations

import time

import redis

from connector.state import keys
from connector.state.queues import QUEUES, outstanding
from connector.state.runs import RunHistory
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["link_hints"]

_WORKERS = {"spotler": "spotler-worker", "afas": "afas-worker"}


def link_hints(client: redis.Redis, *, poll_interval_s: float, now: float | None = None) -> list[str]:
    """One line per likely cause, read from Redis; empty when everything looks alive."""
    now = time.time() if now is None else now
    hints: list[str] = []
    try:
        history = RunHistory(client)
        for source in ("afas", "spotler"):
            process = f"{source}-producer (connector produce {source})"
            last = history.last(source)
            if not client.exists(keys.producer_lock(source)):
                hints.append(f"no {process} is running: its Redis lease is free")
            elif last is None:
                hints.append(f"the {process} holds its lease but has not finished a poll yet")
            elif now - (last.started_at + last.duration_s) > 3 * poll_interval_s + 60:
                hints.append(f"the {process} last finished a poll {now - last.started_at:.0f}s ago")
        for queue in QUEUES:
            waiting = outstanding(client, queue)
            if waiting:
                hints.append(f"{waiting} message(s) wait on queue {queue!r}: is a {_WORKERS[queue]} "
                             f"(connector work --queue {queue}) running?")
        dead = DeadLetterStore(client).count()
        if dead:
            hints.append(f"{dead} dead letter(s): see `connector dlq list`")
    except redis.RedisError as exc:
        hints.append(f"Redis could not be read ({type(exc).__name__}): is REDIS_URL the link's Redis?")
    return hints
