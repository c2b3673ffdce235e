"""The outbox: recorded in order, bounded with the drops counted, nothing at all without EVENTS_URL."""

from __future__ import annotations

import json
import logging

import pytest
import redis

from connector.events.outbox import OUTBOX, Outbox
from connector.events.schemas import ContactSynced, RecordRejected
from connector.state.conflicts import ConflictStore
from connector.state.keys import COUNTERS
from connector.state.rejections import RejectionStore
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetter, DeadLetterStore


def bodies(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(fields[b"e"]) for _, fields in client.xrange(OUTBOX)]


def counter(client: redis.Redis, name: str) -> int:
    return int(client.hget(COUNTERS, name) or 0)


def letter(letter_id: str, contacts: list[str]) -> DeadLetter:
    payload = {"changes": [{"contact_id": c, "changes": {"email": f"{c}@example.org"}} for c in contacts]}
    return DeadLetter(id=letter_id, queue="spotler", actor="upsert_batch",
                      message={"kwargs": {"payload": payload}, "args": []}, reason="fatal",
                      error_class="RecordRejected", error="refused", attempts=1, failed_at=1.0)


def test_events_are_appended_in_order_with_kind_id_and_contact(redis_client: redis.Redis) -> None:
    outbox = Outbox(redis_client)
    events = [ContactSynced(contact_id=str(n), fields=["email"]) for n in range(5)]
    assert outbox.record(events) == 0
    entries = redis_client.xrange(OUTBOX)
    assert [f[b"i"].decode() for _, f in entries] == [e.event_id for e in events]
    assert {f[b"k"] for _, f in entries} == {b"contact.synced"}
    assert [f[b"c"].decode() for _, f in entries] == [str(n) for n in range(5)]
    assert outbox.length() == 5
    assert counter(redis_client, "events_recorded") == 5


def test_the_bound_trims_the_oldest_and_counts_every_dropped_event(redis_client: redis.Redis) -> None:
    outbox = Outbox(redis_client, max_len=100)
    recorded = []
    for _ in range(30):
        batch = [ContactSynced(contact_id="1", fields=[]) for _ in range(20)]
        outbox.record(batch)
        recorded += [e.event_id for e in batch]
    left = [f[b"i"].decode() for _, f in redis_client.xrange(OUTBOX)]
    assert 100 <= len(left) < 600  # approximate: whole stream nodes go
    assert left == recorded[-len(left):]  # the newest are kept, in order
    assert outbox.trimmed() == counter(redis_client, "events_trimmed") == 600 - len(left)


def test_an_e_mail_address_as_contact_id_leaves_as_its_digest(redis_client: redis.Redis) -> None:
    Outbox(redis_client).record([RecordRejected(contact_id="Jan@Example.org", source="spotler", field="externalId",
                                                reason="not in AFAS")])
    [body] = bodies(redis_client)
    assert str(body["contact_id"]).startswith("<e-mail ")
    assert "example" not in json.dumps(body).lower()


def test_without_events_url_the_stores_record_nothing(redis_client: redis.Redis) -> None:
    RejectionStore(redis_client).add_many([Rejection(contact_id="1", field="Email", reason="no e-mail address")])
    DeadLetterStore(redis_client).add(letter("l1", ["1"]))
    assert not redis_client.exists(OUTBOX)
    assert counter(redis_client, "events_recorded") == 0


@pytest.mark.usefixtures("events_on")
def test_a_rejection_is_an_event_when_first_seen_or_its_reason_changes(redis_client: redis.Redis) -> None:
    store = RejectionStore(redis_client)
    store.add_many([Rejection(contact_id="1", field="Email", reason="no e-mail address"),
                    Rejection(contact_id=None, field="ContactId", reason="missing contact id")])
    store.add_many([Rejection(contact_id="1", field="Email", reason="no e-mail address")])  # the next poll
    store.add_many([Rejection(contact_id="1", field="Email", reason="invalid e-mail address")])
    assert [(b["kind"], b["contact_id"], b["reason"]) for b in bodies(redis_client)] == [
        ("record.rejected", "1", "no e-mail address"),
        ("record.rejected", None, "missing contact id"),
        ("record.rejected", "1", "invalid e-mail address"),
    ]


@pytest.mark.usefixtures("events_on")
def test_a_conflict_is_an_event_once_without_its_values(redis_client: redis.Redis) -> None:
    conflict = Conflict(contact_id="7", field="lastName", afas_value="Jansen", spotler_value="Janssen",
                        agreed_value="Jans", rule="newest", winner="spotler", value="Janssen")
    ConflictStore(redis_client).add_many([conflict])
    ConflictStore(redis_client).add_many([conflict])  # the other producer saw it too
    [body] = bodies(redis_client)
    assert (body["kind"], body["contact_id"], body["field"], body["rule"], body["winner"]) == (
        "conflict.settled", "7", "lastName", "newest", "spotler")
    assert "Jans" not in json.dumps(body)


@pytest.mark.usefixtures("events_on")
def test_a_dead_letter_is_an_event_per_contact_it_names(redis_client: redis.Redis) -> None:
    DeadLetterStore(redis_client).add(letter("l1", ["1", "2"]))
    found = bodies(redis_client)
    assert [(b["kind"], b["contact_id"], b["letter_id"], b["reason"]) for b in found] == [
        ("change.dead_lettered", "1", "l1", "fatal"), ("change.dead_lettered", "2", "l1", "fatal")]
    assert "example.org" not in json.dumps(found)


@pytest.mark.usefixtures("events_on")
def test_an_outbox_failure_is_logged_and_counted_and_the_write_goes_on(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.set(OUTBOX, "not a stream")  # every XADD now fails
    store = RejectionStore(redis_client)
    assert store.add_many([Rejection(contact_id="1", field="Email", reason="no e-mail address")]) == 1
    assert store.count() == 1
    assert counter(redis_client, "events_unrecorded") == 1
    assert any("not recorded" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
