"""Every GetConnector read of the producer pages by key: the sandbox never sees a skip above 0.

AFAS is slow at deep skips (the sandbox makes a page wait for its skip), so a
first sync, an incremental poll and a resync over more rows than one page must
each ask ``ContactId > last`` at skip 0. What was asked is read from the
sandbox's own request log, not from the client.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from tests.producers.conftest import (
    GETCONNECTOR,
    PAGE_SIZE,
    AfasSandbox,
    Clock,
    Outbox,
    Sandboxes,
    afas_producer,
    applied,
)

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
SEEDED = T0 - timedelta(hours=3)
CONTACTS = PAGE_SIZE + 200  # two pages per pass
ROUTE = f"GET /connectors/{GETCONNECTOR}"


def skips_asked(afas: AfasSandbox) -> list[int | None]:
    """The ``skip`` of every GetConnector read since the log was last cleared; the log is then cleared."""
    log = afas.call("GET", "/requests/log")
    afas.call("DELETE", "/requests")
    return [r["skip"] for r in log if r["route"] == ROUTE]


def test_a_first_sync_an_incremental_poll_and_a_resync_never_ask_for_a_skip_above_0(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(CONTACTS, 1, SEEDED)
    afas.set_clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    clock = Clock(T0)
    # A lookback reaching before every seeded date: the incremental poll reads every row too.
    producer = afas_producer(client, redis_client, outbox, clock, lookback_s=40 * 365 * 86400)
    skips_asked(afas)

    first = producer.poll_once()
    assert (first.kind, first.cursor_from, first.read) == ("poll", None, CONTACTS)
    assert skips_asked(afas) == [0, 0]
    applied(redis_client, outbox.changes)
    outbox.clear()

    clock.now = T0 + timedelta(minutes=1)
    afas.set_clock(clock.now)
    poll = producer.poll_once()
    assert (poll.kind, poll.cursor_from, poll.read) == ("poll", T0.isoformat(), CONTACTS)
    assert skips_asked(afas) == [0, 0]

    clock.now = T0 + timedelta(minutes=2)
    afas.set_clock(clock.now)
    resync = producer.poll_once(full=True)
    assert (resync.kind, resync.read) == ("resync", CONTACTS)
    assert skips_asked(afas) == [0, 0]
