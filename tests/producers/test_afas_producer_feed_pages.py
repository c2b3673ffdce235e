"""Both producers read Spotler's feed in the largest pages: few requests for a crowded window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import redis
from tests.producers.conftest import (
    AfasSandbox,
    Clock,
    Outbox,
    Sandboxes,
    SpotlerSandbox,
    afas_producer,
    applied,
    read_afas,
    spotler_producer,
)

from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.state.cursors import CursorStore

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
FEED = "GET /contact/updates/list"


class Pair(msgspec.Struct):
    """Both sandboxes at ``T0`` (AFAS seeded three hours before) and a client of each."""

    afas: AfasSandbox
    spotler: SpotlerSandbox
    afas_client: AfasClient
    spotler_client: SpotlerClient


def pair(sandboxes: Sandboxes, seed: int = 1) -> Pair:
    afas = sandboxes.afas(20, seed, T0 - timedelta(hours=3))
    afas.set_clock(T0)
    spotler = sandboxes.spotler(T0)
    afas_client, spotler_client = afas.client(), spotler.client()
    sandboxes.close_later(afas_client)
    sandboxes.close_later(spotler_client)
    return Pair(afas, spotler, afas_client, spotler_client)


def crowd(spotler: SpotlerSandbox) -> None:
    """3,000 contacts changed in the same second (what a first sync's own writes look like): three
    pages of 1,000, one of 10,000."""
    for start in range(0, 3000, 1000):
        spotler.seed(*({"externalId": str(90_000 + n), "properties": {"email": f"f{n}@example.nl"}}
                       for n in range(start, start + 1000)))
    spotler.call("DELETE", "/requests")


def test_a_window_of_thousands_of_spotler_changes_is_read_in_one_request(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    both = pair(sandboxes)
    crowd(both.spotler)  # within the window the producer looks at
    producer = afas_producer(both.afas_client, redis_client, Outbox(), Clock(T0), spotler=both.spotler_client)

    producer.poll_once()

    assert producer.spotler_seen == 3000  # every item of the window was read ...
    assert both.spotler.call("GET", "/requests")["routes"] == {FEED: 1}  # ... in one request


def test_a_poll_that_finds_no_afas_change_reads_nothing_from_spotler(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    """The look at Spotler serves the rows a poll decides on: with none (no row, or none changed), it
    would only spend the rate the workers write with."""
    both = pair(sandboxes, seed=2)  # a seed without blocked contacts
    afas, spotler, afas_client, spotler_client = both.afas, both.spotler, both.afas_client, both.spotler_client
    clock, outbox = Clock(T0), Outbox()
    producer = afas_producer(afas_client, redis_client, outbox, clock, spotler=spotler_client)
    first = producer.poll_once()  # the first sync reads every row, and looks once
    assert first.read == 20
    assert spotler.call("GET", "/requests")["routes"] == {FEED: 1}
    applied(redis_client, outbox.changes)  # the workers wrote them: both systems agree
    spotler.call("DELETE", "/requests")
    afas.set_clock(T0 + timedelta(hours=1))
    clock.now = T0 + timedelta(hours=1)

    quiet = producer.poll_once()
    assert quiet.read == 0
    assert spotler.call("GET", "/requests")["routes"] == {}
    # Every row read again, none changed (a blocked one would need the look: the producer undoes
    # Spotler opt-ins of blocked contacts).
    assert not any(r.blocked for r in read_afas(afas).valid.values())
    again = producer.poll_once(full=True)
    assert (again.read, again.changed) == (20, 0)
    assert spotler.call("GET", "/requests")["routes"] == {}


def test_the_spotler_producer_reads_a_crowded_window_in_the_largest_pages_too(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    both = pair(sandboxes)
    spotler, afas_client, spotler_client = both.spotler, both.afas_client, both.spotler_client
    crowd(spotler)
    CursorStore(redis_client, "spotler").set(T0 - timedelta(minutes=1))
    producer = spotler_producer(spotler_client, afas_client, redis_client, Outbox(), Clock(T0 + timedelta(minutes=1)))

    result = producer.poll_once()

    assert result.read == 3000
    assert spotler.call("GET", "/requests")["routes"][FEED] == 1


def test_rows_whose_changes_are_on_their_way_are_not_looked_at_again(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    """During a first sync the polls after the pass re-read rows whose changes still wait in the queue:
    nothing new to decide, so no Spotler read. A row changed again in AFAS is looked at."""
    both = pair(sandboxes, seed=2)  # a seed without blocked contacts
    afas, spotler, afas_client, spotler_client = both.afas, both.spotler, both.afas_client, both.spotler_client
    outbox = Outbox()
    producer = afas_producer(afas_client, redis_client, outbox, Clock(T0), spotler=spotler_client)
    producer.poll_once()  # enqueued, not written: every change is on its way
    spotler.call("DELETE", "/requests")

    again = producer.poll_once(full=True)

    assert (again.read, again.changed) == (20, 0)
    assert spotler.call("GET", "/requests")["routes"] == {}
    record = next(iter(read_afas(afas).valid.values()))
    afas.edit("person", record.person_id, FiNm="Opnieuw")
    producer.poll_once(full=True)
    assert spotler.call("GET", "/requests")["routes"] == {FEED: 1}
