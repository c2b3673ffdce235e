"""What the alerts look at, read from Redis as ``connector status`` reads it.

Three conditions, each per queue or per producer, so one stuck side does not
hide the other:

- ``dead_letters:<queue>``: the queue has dead letters (the store's, or still
  in Dramatiq's own dead-letter queue), exactly when ``connector status`` says
  so (``status.thresholds``).
- ``producer_lag:<source>``: the producer's last successful poll ended more
  than ``STATUS_MAX_LAG_S`` ago. A producer that never polled counts too, but
  only after ``STATUS_MAX_LAG_S`` of seeing it so (``grace_s``): a fresh
  install's second producer is not an incident.
- ``rejected_share:<source>``: the producer's last poll rejected more than
  ``ALERT_REJECTED_SHARE`` of the rows it read. A poll that read nothing says
  nothing either way, so the condition is not observed then (its state stays).
- ``events_outbox:outbox`` (only with ``EVENTS_URL`` set): the outbox holds
  half of ``EVENTS_OUTBOX_MAX`` or more, unpublished: the bus has not taken
  events for a while, and past the bound the oldest are dropped. It recovers
  once the publisher has drained it below half.

Texts carry counts, queue and producer names and run ids, never a record's
values, and go through ``connector.redaction`` all the same.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec
import redis

from connector.events.outbox import Outbox
from connector.redaction import redact
from connector.settings import Settings
from connector.state.queues import QUEUES
from connector.state.runs import RunHistory
from connector.status import thresholds
from connector.status.collect import SOURCES, producer_status
from connector.status.queues import queue_status
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["ConditionKind", "Observation", "observe"]

ConditionKind = Literal["dead_letters", "producer_lag", "rejected_share", "events_outbox"]
OUTBOX_ALERT_SHARE = 0.5  # of EVENTS_OUTBOX_MAX: warned before anything is dropped


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """One condition as seen now: whether it holds, its figure and the line that says so."""

    condition: ConditionKind
    subject: str  # the queue or the producer's source
    firing: bool
    value: float  # dead letters, seconds of lag (-1: never polled), the share rejected, or events unpublished
    threshold: float
    text: str
    grace_s: float = 0.0  # how long it must hold before it is announced

    @property
    def key(self) -> str:
        return f"{self.condition}:{self.subject}"


def observe(client: redis.Redis, settings: Settings, *, now: float | None = None) -> list[Observation]:
    """Every condition that can be judged now, queues first, then producers."""
    now = time.time() if now is None else now
    dead = DeadLetterStore(client)
    history = RunHistory(client)
    queues = [queue_status(client, q, dead_letters=dead.count(q), now=now) for q in QUEUES]
    producers = [producer_status(client, history, source, now) for source in SOURCES]
    crossed = {(a.kind, a.subject): a.message for a in thresholds.check(queues, producers, settings.status_max_lag_s)}
    found: list[Observation] = []
    for queue in queues:
        message = crossed.get(("dead_letters", queue.name))
        found.append(Observation(
            condition="dead_letters", subject=queue.name, firing=message is not None,
            value=queue.dead_letters + queue.broker_dead, threshold=0,
            text=redact(message or f"queue {queue.name}: no dead letters"),
        ))
    for producer in producers:
        lagging = crossed.get(("producer_lag", producer.source))
        never = crossed.get(("never_polled", producer.source))
        message = lagging or never
        ok = f"producer {producer.source}: last successful poll ended {producer.lag_s or 0:.0f}s ago"
        found.append(Observation(
            condition="producer_lag", subject=producer.source, firing=message is not None,
            value=-1 if producer.lag_s is None else round(producer.lag_s, 1), threshold=settings.status_max_lag_s,
            text=redact(message or ok), grace_s=settings.status_max_lag_s if never else 0.0,
        ))
    for source in SOURCES:
        share = _rejected_share(history, source, settings.alert_rejected_share)
        if share is not None:
            found.append(share)
    if settings.events_url:
        found.append(_outbox(client, settings.events_outbox_max))
    return found


def _outbox(client: redis.Redis, max_len: int) -> Observation:
    held = Outbox(client).length()
    limit = max(1, int(max_len * OUTBOX_ALERT_SHARE))
    firing = held >= limit
    text = (f"events outbox: {held} events not yet accepted by the bus (alert at {limit}, EVENTS_OUTBOX_MAX "
            f"{max_len})" + ("; is the bus at EVENTS_URL reachable? past the bound the oldest are dropped"
                             if firing else ""))
    return Observation(condition="events_outbox", subject="outbox", firing=firing, value=held, threshold=limit,
                       text=redact(text))


def _rejected_share(history: RunHistory, source: str, limit: float) -> Observation | None:
    last = history.last(source)
    if last is None or last.read <= 0:
        return None
    share = last.rejected / last.read
    firing = share > limit
    text = (f"producer {source}: poll {last.run_id} rejected {last.rejected} of {last.read} rows ({share:.1%}, "
            f"limit {limit:.1%})" + ("; see `connector rejects`" if firing else ""))
    return Observation(condition="rejected_share", subject=source, firing=firing, value=round(share, 4),
                       threshold=limit, text=redact(text))
