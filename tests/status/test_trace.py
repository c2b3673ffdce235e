"""The trace's verdicts and field rows, from real Redis state; the live sides are given as plain readers."""

from __future__ import annotations

import json

import dramatiq
import msgspec
import redis

from connector.schemas.events import ContactChange, FieldWrite, SpotlerBatch, Value
from connector.state.journal import Journal, Seen
from connector.state.ordering import CommitItem, ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.status.trace import Side, Trace, as_json, build_trace, text_report
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetterStore, letter_for_message

EMAIL = "trace.me@voorbeeld.nl"
VALUES: dict[str, Value] = {"email": EMAIL, "firstName": "Tracy", "permissions.1": True}


def agree(client: redis.Redis, cid: str, values: dict[str, Value] = VALUES) -> None:
    Ordering(client).commit("spotler", "", [CommitItem(write=ContactWrite(
        contact_id=cid, fields=[FieldWrite(n, v, 10, 0) for n, v in values.items()], person="P", organisation="O"))])


def reader(values: dict[str, Value] | None) -> Side:
    return Side(values=dict(values) if values is not None else None)


def traced(client: redis.Redis, cid: str, afas: Side | None = None, spotler: Side | None = None) -> Trace:
    a, s = afas or reader(VALUES), spotler or reader(VALUES)
    return build_trace(client, cid, afas=lambda _: a, spotler=lambda _: s)


def test_in_step_shows_every_field_masked_and_the_journal(redis_client: redis.Redis) -> None:
    agree(redis_client, "7")
    Journal(redis_client).append([("7", Seen(source="afas", stamp=5, fields=["email"], decision="to_spotler"))])
    trace = traced(redis_client, "7")
    assert trace.verdict == "in step"
    assert [r.field for r in trace.fields] == ["email", "firstName", "permissions.1"]
    assert all(r.same for r in trace.fields)
    [email] = [r for r in trace.fields if r.field == "email"]
    assert email.agreed == email.afas == email.spotler
    assert email.agreed is not None
    assert email.agreed.startswith("<e-mail ")
    assert [s.text for s in trace.timeline] == ["change seen in AFAS (email): enqueued for Spotler"]
    for shown in (as_json(trace), text_report(trace)):
        assert EMAIL not in shown
        assert "Tracy" not in shown


def test_a_side_that_moved_with_nothing_on_its_way_differs(redis_client: redis.Redis) -> None:
    agree(redis_client, "7")
    trace = traced(redis_client, "7", spotler=reader({**VALUES, "firstName": "Tracey"}))
    assert trace.verdict.startswith("differs: firstName")
    assert [r.field for r in trace.fields if not r.same] == ["firstName"]
    assert "<- differs" in text_report(trace)


def test_a_side_that_cannot_be_read_is_named_and_the_rest_is_shown(redis_client: redis.Redis) -> None:
    agree(redis_client, "7")
    trace = traced(redis_client, "7", afas=Side(problem="not read: HTTP 503"), spotler=reader(None))
    assert (trace.afas, trace.spotler) == ("not read: HTTP 503", "not listed")
    assert trace.verdict == "in step"  # nothing either side could show differs
    assert {r.afas for r in trace.fields} == {None}


def test_waiting_names_the_queue_or_the_pending_fields(redis_client: redis.Redis) -> None:
    agree(redis_client, "7")
    pending = ContactWrite(contact_id="7", fields=[FieldWrite("firstName", "T", 20, 10)])
    Ordering(redis_client).stage("spotler", [pending])
    assert traced(redis_client, "7").verdict == "waiting: firstName into spotler being written"
    batch = SpotlerBatch(changes=[ContactChange(contact_id="7", changes={"firstName": "T"})])
    message = dramatiq.Message(queue_name="spotler", actor_name="upsert_batch", args=(), options={},
                               kwargs={"payload": msgspec.to_builtins(batch)})
    redis_client.hset("dramatiq:spotler.msgs", message.message_id, json.dumps(message.asdict(), separators=(",", ":")))
    other = dramatiq.Message(queue_name="spotler", actor_name="upsert_batch", args=(), options={}, kwargs={
        "payload": msgspec.to_builtins(SpotlerBatch(changes=[ContactChange(contact_id="70", changes={})]))})
    redis_client.hset("dramatiq:spotler.DQ.msgs", other.message_id, json.dumps(other.asdict()))
    trace = traced(redis_client, "7")
    assert trace.queued == {"spotler": 1}
    assert trace.verdict == "waiting: 1 message in queue spotler"


def test_rejected_dead_lettered_forgotten_and_unknown_in_that_order(redis_client: redis.Redis) -> None:
    assert traced(redis_client, "7").verdict == "unknown to the link: no agreed state"
    agree(redis_client, "7")
    RejectionStore(redis_client).add_many([Rejection(contact_id="7", field="email", reason="invalid e-mail address")])
    assert traced(redis_client, "7").verdict == "rejected: afas field email: invalid e-mail address"
    message = dramatiq.Message(queue_name="afas", actor_name="apply_afas_change", args=(), options={}, kwargs={
        "payload": {"contact_id": "7", "changes": {}}})
    DeadLetterStore(redis_client).add(letter_for_message(message, reason="fatal", error=ValueError("x"), attempts=1,
                                                         entity_key="contact:7", letter_id="letter-7"))
    assert traced(redis_client, "7").verdict.startswith("dead-lettered: letter-7 (afas, fatal: ValueError)")
    Tombstones(redis_client).add(["7"])
    assert traced(redis_client, "7").verdict.startswith("forgotten")
