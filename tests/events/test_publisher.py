"""The publisher: in order, once per event while nothing crashes, resumed where it was after the bus was down.

Run against kombu's Redis transport on the test Redis, and against RabbitMQ
(with publisher confirms) when ``RABBITMQ_URL`` is set or one answers on 127.0.0.1:5672.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import redis
from tests.events.conftest import Consumer

from connector.events.outbox import OUTBOX, PUBLISHED, Outbox
from connector.events.publisher import BusUnavailable, Publisher
from connector.events.schemas import ConsentChanged, ContactSynced, DomainEvent, RecordRejected
from connector.sandbox.server import free_port
from connector.state.keys import COUNTERS

BUSES = ["redis", "rabbitmq"]


@pytest.fixture(params=BUSES)
def bus_url(request: pytest.FixtureRequest) -> str:
    fixture = "redis_bus_url" if request.param == "redis" else "rabbitmq_url"
    url: str = request.getfixturevalue(fixture)
    return url


def scripted_run(contacts: int, per_contact: int) -> list[DomainEvent]:
    """Each contact synced, its consent flipped, a rejection: interleaved across contacts, as workers do."""
    events: list[DomainEvent] = []
    for step in range(per_contact):
        for n in range(contacts):
            cid = str(20000 + n)
            kind = step % 3
            if kind == 0:
                events.append(ContactSynced(contact_id=cid, fields=["email", "permissions.1"]))
            elif kind == 1:
                events.append(ConsentChanged(contact_id=cid, system="spotler", field="permissions.1", bit=1,
                                             new=step % 2 == 0, old=step % 2 == 1))
            else:
                events.append(RecordRejected(contact_id=cid, source="afas", field="Email", reason="no e-mail address"))
    return events


def check_received(got: list[tuple[str, dict[str, Any]]], events: list[DomainEvent]) -> None:
    """Every event exactly once (by event id, which is also the message id) and in per-contact order."""
    ours = {e.event_id for e in events}
    mine = [(mid, body) for mid, body in got if body["event_id"] in ours]
    assert all(mid == body["event_id"] for mid, body in mine)
    ids = [body["event_id"] for _, body in mine]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert set(ids) == ours, f"{len(ours - set(ids))} events missing"
    order: dict[str, list[str]] = defaultdict(list)
    for _, body in mine:
        order[body["contact_id"]].append(body["event_id"])
    expected: dict[str, list[str]] = defaultdict(list)
    for e in events:
        expected[str(e.contact_id)].append(e.event_id)
    assert order == expected


def test_the_outbox_is_published_in_order_with_its_routing_keys(
    redis_client: redis.Redis, bus_url: str, consumer_on: Callable[[str], Consumer],
) -> None:
    consumer = consumer_on(bus_url)
    events = scripted_run(contacts=5, per_contact=9)
    Outbox(redis_client).record(events)
    publisher = Publisher(redis_client, bus_url)
    try:
        assert publisher.drain() == len(events)
    finally:
        publisher.close()
    got = consumer.receive({e.event_id for e in events})
    check_received(got, events)
    kinds = {body["event_id"]: body["kind"] for _, body in got}
    assert [kinds[e.event_id] for e in events[:15:5]] == ["contact.synced", "consent.changed", "record.rejected"]
    assert redis_client.xlen(OUTBOX) == 0  # published entries leave the outbox
    assert int(redis_client.hget(COUNTERS, "events_published") or 0) == len(events)


def test_a_bus_that_is_down_leaves_the_outbox_whole_and_a_publisher_resumes_where_it_was(
    redis_client: redis.Redis, bus_url: str, consumer_on: Callable[[str], Consumer],
) -> None:
    consumer = consumer_on(bus_url)
    outbox = Outbox(redis_client)
    before = scripted_run(contacts=4, per_contact=3)
    outbox.record(before)
    up = Publisher(redis_client, bus_url)
    assert up.drain() == len(before)
    up.close()
    cursor = redis_client.get(PUBLISHED)

    # The bus goes away (nothing listens on the port) while the link goes on recording.
    during = scripted_run(contacts=4, per_contact=6)
    outbox.record(during)
    down_url = f"amqp://guest:guest@127.0.0.1:{free_port()}//" if bus_url.startswith("amqp") \
        else f"redis://127.0.0.1:{free_port()}/0"
    down = Publisher(redis_client, down_url, connect_timeout_s=0.5)
    with pytest.raises(BusUnavailable):
        down.drain()
    assert down.poll() == 0  # the loop's form: no raise, a retry later
    down.close()
    assert redis_client.get(PUBLISHED) == cursor
    assert outbox.length() == len(during)

    # Back: a publisher (restarted, or the same process reconnecting) goes on from the cursor.
    after = scripted_run(contacts=4, per_contact=3)
    outbox.record(after)
    back = Publisher(redis_client, bus_url)
    try:
        assert back.poll() == len(during) + len(after)
    finally:
        back.close()
    check_received(consumer.receive({e.event_id for e in (*before, *during, *after)}), [*before, *during, *after])


def test_a_publisher_killed_before_its_cursor_moved_publishes_again_at_least_once(
    redis_client: redis.Redis, redis_bus_url: str, consumer_on: Callable[[str], Consumer],
) -> None:
    consumer = consumer_on(redis_bus_url)
    events = scripted_run(contacts=2, per_contact=2)
    Outbox(redis_client).record(events)
    publisher = Publisher(redis_client, redis_bus_url)
    for entry_id, fields in redis_client.xrange(OUTBOX):  # what drain does, without moving the cursor
        publisher._publish(fields[b"k"].decode(), fields[b"i"].decode(), fields[b"e"])
        last = entry_id.decode()
    assert publisher.cursor() is None
    assert publisher.drain() == len(events)  # the restarted publisher: once more
    publisher.close()
    assert publisher.cursor() == last
    got = consumer.receive({e.event_id for e in events})
    ids = [body["event_id"] for _, body in got]
    assert sorted(ids) == sorted([e.event_id for e in events] * 2)  # duplicates, never a gap: dedupe on the id
