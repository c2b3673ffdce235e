"""The Dramatiq broker: the connector's one global.

``broker`` is built when this module is first imported, from
``Settings.from_env()``, and installed with ``dramatiq.set_broker``; actor
modules do ``from connector.workers.broker import broker``. So REDIS_URL (and
REDIS_TLS_INSECURE) must be in the environment before the import; without
REDIS_URL the embedded Redis under CONNECTOR_DATA_DIR is started. Tests set
REDIS_URL before collecting any module that imports this one.

Queues: ``spotler`` (writes to Spotler) and ``afas`` (writes to AFAS).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, TimeLimit

from connector.runtime import redis_client
from connector.settings import Settings
from connector.workers.dead_letters import DeadLetterStore
from connector.workers.middleware import ErrorPolicy

__all__ = ["AFAS_QUEUE", "QUEUES", "SPOTLER_QUEUE", "TIME_LIMIT_MS", "broker", "build_broker"]

SPOTLER_QUEUE = "spotler"
AFAS_QUEUE = "afas"
QUEUES = (SPOTLER_QUEUE, AFAS_QUEUE)

# A safety net above the HTTP timeouts: an actor running longer is interrupted and retried.
TIME_LIMIT_MS = 10 * 60_000
HEARTBEAT_TIMEOUT_MS = 20_000
MAINTENANCE_CHANCE = 10_000  # per million broker commands


def build_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with the connector's middleware: current message, retry policy, time limit.

    The order matters: the time limit is last so that its timer is removed
    before the policy writes a dead letter or re-enqueues.
    """
    client = redis_client(settings)
    middleware = [
        CurrentMessage(),
        ErrorPolicy(DeadLetterStore(client)),
        TimeLimit(time_limit=TIME_LIMIT_MS),
    ]
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        middleware=middleware,
        # A worker that died (kill -9, a crashed dyno) is noticed after 20 s instead of 60 s,
        # and the check runs on ~1% of broker commands instead of 0.1%, so its unacked
        # messages go back to the queue within seconds of that.
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )


broker = build_broker(Settings.from_env())
dramatiq.set_broker(broker)
