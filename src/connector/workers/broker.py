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

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import CurrentMessage, TimeLimit

from connector.runtime import redis_client
from connector.settings import Settings
from connector.workers.dead_letters import DeadLetterStore
from connector.workers.middleware import ErrorPolicy

__all__ = [
    "AFAS_QUEUE", "QUEUES", "SPOTLER_QUEUE", "TIME_LIMIT_MS", "ConnectorBroker", "RedisLost", "broker", "build_broker",
]

log = logging.getLogger("connector.workers")

SPOTLER_QUEUE = "spotler"
AFAS_QUEUE = "afas"
QUEUES = (SPOTLER_QUEUE, AFAS_QUEUE)

# A safety net above the HTTP timeouts: an actor running longer is interrupted and retried.
TIME_LIMIT_MS = 10 * 60_000
HEARTBEAT_TIMEOUT_MS = 20_000
MAINTENANCE_CHANCE = 10_000  # per million broker commands


class RedisLost(ConnectionClosed, redis.ConnectionError):
    """Redis went away under a broker command: Dramatiq's kind (its consumers reconnect) and redis's."""


class ConnectorBroker(RedisBroker):
    """Dramatiq's Redis broker that hands back what a consumer held when it lost Redis.

    When a consumer thread loses its connection, Dramatiq starts a new one but
    drops the delayed messages the old one held in memory (retries waiting for
    their eta), while Redis still lists them as taken by this process; as long
    as the process heartbeats under the same id, nobody takes them back, and
    they wait until the process restarts. So a consumer that starts again takes
    a new broker id: the old id stops heart-beating, and after the heartbeat
    timeout the broker's maintenance puts everything it held back on its
    queue. A message handed back that this process was still working on runs a
    second time, which the ordering check turns into superseded fields.

    Every broker command that loses Redis raises ``RedisLost``: Dramatiq's
    consumer threads treat only their own connection error as "reconnect", and
    a redis error while putting a due retry back on its queue would otherwise
    end the thread that delivers retries, for good.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self._started: set[str] = set()
        self._started_lock = threading.Lock()

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def guarded(*args: Any) -> Any:
            try:
                return dispatch(*args)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise RedisLost(f"{type(exc).__name__}: {exc}") from exc  # type: ignore[no-untyped-call]

        return guarded

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        with self._started_lock:
            if queue_name in self._started:
                old, self.broker_id = self.broker_id, str(uuid.uuid4())
                log.warning("consumer of %s restarted after losing Redis: broker id %s becomes %s, so what "
                            "the old one held goes back to its queue", queue_name, old, self.broker_id)
            self._started.add(queue_name)
        return super().consume(queue_name, prefetch=prefetch, timeout=timeout)


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
    return ConnectorBroker(
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
