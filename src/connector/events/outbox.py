"""The outbox: domain events recorded in a Redis stream, for the publisher to drain.

Recording is never on the sync's critical path: it is one script call after the
write it describes has landed, it is skipped entirely when ``EVENTS_URL`` is
unset (``Outbox.for_process`` is None: not even the event is built), and a
failure is logged and counted (``events_unrecorded``), never raised into the
sync (``connector.events.emit``).

Layout: ``connector:outbox`` a stream, one entry per event with the fields
``k`` (kind = routing key), ``i`` (event id), ``c`` (contact id, "" for none)
and ``e`` (the event's JSON), so the publisher forwards bodies it need not
decode (a rolling deploy may add kinds). ``connector:outbox:published`` the
last entry the bus accepted. Published entries are removed, so the stream's
length is the backlog.

While the bus is down the stream grows up to ``EVENTS_OUTBOX_MAX`` entries
(approximate trimming: whole stream nodes, so a little above it); past that the
oldest unpublished events are dropped, and the same script counts each one in
``events_trimmed`` of the counters hash (``connector status``, ``/metrics``).
Within the bound nothing is lost.

What recording cannot cover: a process killed between a write landing and its
event being recorded loses that one event (the redelivered message finds the
write done and records nothing new).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import msgspec
import redis

from connector.errors import ConfigError
from connector.events.schemas import DomainEvent, encode_event, routing_key
from connector.redaction import mask_value, redact
from connector.settings import Settings
from connector.state.keys import COUNTERS, PREFIX

__all__ = ["OUTBOX", "PUBLISHED", "Outbox", "process_outbox_max"]

log = logging.getLogger(__name__)

OUTBOX = f"{PREFIX}:outbox"
PUBLISHED = f"{PREFIX}:outbox:published"

# Append the events, trimming to about ARGV[1]; count what the bound dropped. One atomic step,
# so a publisher removing published entries meanwhile is not mistaken for trimming.
_RECORD = """
local before = redis.call('XLEN', KEYS[1])
local n = (#ARGV - 1) / 4
for j = 0, n - 1 do
  local b = 2 + j * 4
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
             'k', ARGV[b], 'i', ARGV[b + 1], 'c', ARGV[b + 2], 'e', ARGV[b + 3])
end
redis.call('HINCRBY', KEYS[2], 'events_recorded', n)
local trimmed = before + n - redis.call('XLEN', KEYS[1])
if trimmed > 0 then redis.call('HINCRBY', KEYS[2], 'events_trimmed', trimmed) end
return trimmed
"""


class Outbox:
    """The stream of events not yet accepted by the bus."""

    def __init__(self, client: redis.Redis, *, max_len: int = 50_000) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.client = client
        self.max_len = max_len

    @classmethod
    def for_process(cls, client: redis.Redis) -> Outbox | None:
        """This process's outbox on ``client``; None when ``EVENTS_URL`` is unset (nothing is recorded)."""
        max_len = process_outbox_max()
        return None if max_len is None else cls(client, max_len=max_len)

    def record(self, events: Sequence[DomainEvent]) -> int:
        """Append ``events`` in order; returns how many old events the bound trimmed."""
        if not events:
            return 0
        args: list[str | bytes | int] = [self.max_len]
        for event in events:
            shown = _shown_id(event.contact_id)
            if shown != event.contact_id:
                event = msgspec.structs.replace(event, contact_id=shown)
            args += [routing_key(event), event.event_id, event.contact_id or "", encode_event(event)]
        return int(self.client.eval(_RECORD, 2, OUTBOX, COUNTERS, *args))

    def length(self) -> int:
        return int(self.client.xlen(OUTBOX))

    def trimmed(self) -> int:
        return int(self.client.hget(COUNTERS, "events_trimmed") or 0)


def _shown_id(contact_id: str | None) -> str | None:
    """An id as it may leave the link: a Spotler externalId that is an e-mail address becomes its digest."""
    if contact_id is None or redact(contact_id) == contact_id:
        return contact_id
    return str(mask_value(contact_id))


@functools.cache
def process_outbox_max() -> int | None:
    """``EVENTS_OUTBOX_MAX`` when ``EVENTS_URL`` is set, else None; read once per process (``cache_clear`` resets)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:  # the process itself has refused to start on this by now
        log.warning("events not recorded: %s", exc)
        return None
    return settings.events_outbox_max if settings.events_url else None
