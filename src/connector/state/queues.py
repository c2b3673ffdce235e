"""Read-only views of the Dramatiq queues in Redis (for status, the demo and tests)."""

from __future__ import annotations

import redis

__all__ = ["QUEUES", "outstanding"]

QUEUES = ("spotler", "afas")
NAMESPACE = "dramatiq"


def outstanding(client: redis.Redis, queue: str) -> int:
    """Messages not yet acknowledged: ready, delayed or in flight (Dramatiq keeps them until ack)."""
    pipe = client.pipeline(transaction=False)
    pipe.hlen(f"{NAMESPACE}:{queue}.msgs")
    pipe.hlen(f"{NAMESPACE}:{queue}.DQ.msgs")
    return int(sum(pipe.execute()))
