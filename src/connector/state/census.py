"""What a Redis holds of a connector's, counted by kind: what wiping it would delete."""

from __future__ import annotations

import msgspec
import redis

from connector.state import keys
from connector.state.queues import NAMESPACE as QUEUE_NAMESPACE
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["Census", "take_census"]


class Census(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of the connector's and Dramatiq's keys in one Redis database."""

    keys: int = 0
    agreed_states: int = 0
    cursors: int = 0
    dead_letters: int = 0
    queues: int = 0
    other_keys: int = 0

    @property
    def empty(self) -> bool:
        return self.keys == 0

    def describe(self) -> str:
        """E.g. ``holds 1,234 agreed states, 2 cursors, 5 dead letters, 3 queues``."""
        kinds = (
            (self.agreed_states, "agreed state"), (self.cursors, "cursor"), (self.dead_letters, "dead letter"),
            (self.queues, "queue"), (self.other_keys, "other key"),
        )
        parts = [f"{n:,} {name}{'' if n == 1 else 's'}" for n, name in kinds if n]
        return "holds " + (", ".join(parts) or f"{self.keys:,} connector keys")


def _queue_of(name: str) -> str | None:
    """The Dramatiq queue a ``dramatiq:`` key belongs to (``spotler.DQ.msgs`` → ``spotler``); None for others."""
    if name.startswith("__"):  # __acks__, __heartbeats__: the workers' bookkeeping
        return None
    name = name.removesuffix(".msgs")
    return name.removesuffix(".DQ").removesuffix(".XQ")


def take_census(client: redis.Redis) -> Census:
    """Scan every ``connector:*`` and ``dramatiq:*`` key (read only)."""
    dead_letters = DeadLetterStore(client)
    total = agreed = cursors = dead_letter_keys = other = 0
    queues: set[str] = set()
    for pattern in (f"{keys.PREFIX}:*", f"{QUEUE_NAMESPACE}:*"):
        for raw in client.scan_iter(match=pattern, count=1000):
            key = keys.as_bytes(raw).decode(errors="replace")
            total += 1
            if key.startswith(f"{keys.PREFIX}:agreed:"):
                agreed += 1
            elif key.startswith(f"{keys.PREFIX}:states:"):
                agreed += len(keys.bucket_contacts(key, [keys.as_bytes(f) for f in client.hkeys(raw)]))
            elif key.startswith(f"{keys.PREFIX}:pending:") or key == keys.FIELDS:
                pass  # part of the agreed states counted above
            elif key.startswith(f"{keys.PREFIX}:cursor:"):
                cursors += 1
            elif key.startswith(f"{dead_letters.namespace}:"):
                dead_letter_keys += 1
            elif key.startswith(f"{QUEUE_NAMESPACE}:") and (queue := _queue_of(key.split(":", 1)[1])):
                queues.add(queue)
            else:
                other += 1
    return Census(keys=total, agreed_states=agreed, cursors=cursors,
                  dead_letters=dead_letters.count() if dead_letter_keys else 0,
                  queues=len(queues), other_keys=other)
