"""Drain the outbox to the organisation's bus with kombu, in order, at least once.

Decisions:

- **Its own process** (``events: connector publish-events`` in the Procfile), not
  a thread of ``web``: a bus that hangs or refuses must not slow the status page,
  scaling ``web`` must not start a second publisher, and the publisher holds a
  Redis lease (as a producer does, ``connector:lock:producer:events``) so only one
  drains at a time and the bus sees the outbox's order. With ``EVENTS_URL`` unset
  the process idles: no platform restarts it in a loop.
- **Order.** Entries are read oldest first and published one by one on one
  channel; the stream is appended in the order the link did things, so a
  contact's events reach the bus in that contact's order.
- **At least once.** ``connector:outbox:published`` (the last entry the bus
  accepted) and the removal of published entries move only after the publish
  returned: on RabbitMQ (``amqp://``, ``amqps://``) with publisher confirms
  (``confirm_publish``: the broker's ack, a nack raises), on Redis and SQS when
  the write call returned. A publisher killed between a publish and that step
  publishes the entry again after its restart: consumers deduplicate on the
  message id, which is the event id.
- **Bus down.** kombu's retry policy covers a blip (a few quick retries with a
  reconnect); past that the publisher logs one line, drops the connection, and
  tries again with capped backoff (1 s doubling to 30 s), leaving the cursor on
  the last accepted entry. The outbox grows meanwhile, bounded by
  ``EVENTS_OUTBOX_MAX`` (``connector.events.outbox``).

Messages: exchange ``connector.events`` (topic, durable), routing key = the
event's kind, body = the event's JSON (``application/json``), persistent,
message id = event id, header ``schema_version``. The bus drops what no queue
is bound to, as every AMQP broker does: a consumer declares its durable queue
and binding before it relies on events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import kombu
import msgspec
import redis

from connector.errors import RetriableError
from connector.events.outbox import OUTBOX, PUBLISHED
from connector.events.schemas import EXCHANGE
from connector.redaction import redact
from connector.state.keys import COUNTERS

__all__ = ["BATCH", "RETRY_POLICY", "BusUnavailable", "Publisher", "exchange", "kombu_url"]

log = logging.getLogger(__name__)

BATCH = 100  # entries read from the outbox at a time; the cursor moves after each batch (or on a failure)
# A blip is retried inside one publish; a longer outage is the publisher's backoff (``Publisher.poll``).
RETRY_POLICY: dict[str, Any] = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}
_BACKOFF_START_S, _BACKOFF_MAX_S = 1.0, 30.0
_CONFIRMING = ("amqp", "amqps", "pyamqp")


class BusUnavailable(RetriableError):
    """The bus did not accept a message (down, refusing, or nacked it)."""


def exchange() -> kombu.Exchange:
    return kombu.Exchange(EXCHANGE, type="topic", durable=True)


def kombu_url(url: str) -> str:
    """``unix://`` (the embedded Redis) in kombu's spelling; any other URL as it is."""
    return "redis+socket://" + url[len("unix://"):] if url.startswith("unix://") else url


def _after(stream_id: str) -> str:
    """The smallest stream id above ``stream_id`` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Publisher:
    """One publisher: ``poll`` publishes what the outbox holds, or waits out the bus's outage."""

    def __init__(self, client: redis.Redis, url: str, *, connect_timeout_s: float = 5.0) -> None:
        self.client = client
        self.url = kombu_url(url)
        self.connect_timeout_s = connect_timeout_s
        self.exchange = exchange()
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._retry_at = 0.0
        self._backoff = _BACKOFF_START_S
        self._down_since: float | None = None

    # -- the bus -----------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        scheme = self.url.split("://", 1)[0].split("+", 1)[0].lower()
        options: dict[str, Any] = {"connect_timeout": self.connect_timeout_s}
        if scheme in _CONFIRMING:
            options["transport_options"] = {"confirm_publish": True}
        return options

    def _producer_for_bus(self) -> kombu.Producer:
        if self._producer is None:
            self._connection = kombu.Connection(self.url, **self._options())
            self._producer = kombu.Producer(self._connection, exchange=self.exchange, auto_declare=False)
        return self._producer

    def close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a connection to a bus that went away may fail to close
                log.debug("closing the bus connection failed", exc_info=True)

    def _publish(self, kind: str, event_id: str, body: bytes) -> None:
        producer = self._producer_for_bus()
        try:
            producer.publish(
                body, routing_key=kind, message_id=event_id, content_type="application/json",
                content_encoding="utf-8", delivery_mode=2, headers={"schema_version": _schema_of(body)},
                declare=[self.exchange], retry=True, retry_policy=RETRY_POLICY,
            )
        except Exception as exc:
            self.close()
            raise BusUnavailable(f"the bus did not accept event {event_id}: {type(exc).__name__}: "
                                 f"{redact(str(exc))[:200]}") from exc

    # -- the outbox --------------------------------------------------------------------------

    def cursor(self) -> str | None:
        raw = self.client.get(PUBLISHED)
        return None if raw is None else _text(raw)

    def _entries(self, after: str | None) -> Iterator[tuple[str, str, str, bytes]]:
        start = "-" if after is None else f"({after}"
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.client.xrange(  # type: ignore[assignment]
            OUTBOX, start, "+", count=BATCH)
        for stream_id, fields in entries:
            yield _text(stream_id), _text(fields[b"k"]), _text(fields[b"i"]), fields[b"e"]

    def _accepted(self, last_id: str, count: int) -> None:
        """The bus took everything up to ``last_id``: move the cursor, drop those entries."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(PUBLISHED, last_id)
            pipe.xtrim(OUTBOX, minid=_after(last_id))
            pipe.hincrby(COUNTERS, "events_published", count)
            pipe.execute()

    def drain(self, limit: int | None = None) -> int:
        """Publish the outbox in order until it is empty (or ``limit``); returns how many were published.

        Raises ``BusUnavailable`` when the bus fails, after recording what it accepted.
        """
        published = 0
        cursor = self.cursor()
        while limit is None or published < limit:
            batch = list(self._entries(cursor))
            if not batch:
                return published
            done: str | None = None
            count = 0
            try:
                for stream_id, kind, event_id, body in batch:
                    self._publish(kind, event_id, body)
                    done, count = stream_id, count + 1
            finally:
                if done is not None:
                    self._accepted(done, count)
                    published += count
                    cursor = done
        return published

    def poll(self) -> int:
        """One round of the publish loop: drain, or wait out the bus (one line when it goes, one when it is back)."""
        if time.monotonic() < self._retry_at:
            return 0
        try:
            published = self.drain(limit=10 * BATCH)  # back to the loop now and then: its lease, its stop
        except BusUnavailable as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("events: bus unavailable (%s); %d events wait in the outbox, retrying", exc,
                            self.client.xlen(OUTBOX))
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)
            return 0
        if self._down_since is not None:
            log.info("events: bus is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
        self._backoff = _BACKOFF_START_S
        return published


class _Head(msgspec.Struct):
    schema_version: int = 0


_head = msgspec.json.Decoder(_Head).decode


def _schema_of(body: bytes) -> int:
    """The body's schema_version, for consumers that route on headers (the body is the truth)."""
    try:
        return _head(body).schema_version
    except msgspec.DecodeError:
        return 0
