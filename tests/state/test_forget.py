"""Erasing a contact: every record that names it goes, a tombstone stays and keeps it from coming back."""

from __future__ import annotations

import dramatiq
import msgspec
import redis
from tests.e2e.helpers import redis_text as dump

from connector.schemas.events import ContactChange, FieldWrite, SpotlerBatch
from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.beaten import BeatenValues
from connector.state.conflicts import ConflictStore
from connector.state.consent import ConsentRecord, ConsentTrail
from connector.state.departed import Departed
from connector.state.doubt import WritesInDoubt
from connector.state.forget import erase
from connector.state.journal import journal_key
from connector.state.ordering import CommitItem, ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.state.retention import sweep
from connector.state.tombstones import TOMBSTONE_DAYS, Tombstones
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetter, DeadLetterStore, contacts_of, letter_for_message

EMAIL = "vergeet.mij@voorbeeld.nl"
DAY = 86400.0


def change(cid: str, email: str = EMAIL) -> ContactChange:
    return ContactChange(contact_id=cid, changes={"email": email, "lastName": "Vergeetmenietje"},
                         stamps={"email": 10, "lastName": 10}, bases={"email": 0, "lastName": 0})


def batch_letter(*cids: str, failed_at: float = 1000.0) -> DeadLetter:
    message = dramatiq.Message(
        queue_name="spotler", actor_name="upsert_batch", args=(), options={},
        kwargs={"payload": msgspec.to_builtins(SpotlerBatch(changes=[change(c, f"x{c}@voorbeeld.nl")
                                                                     for c in cids]))},
    )
    letter = letter_for_message(message, reason="exhausted", error=None, attempts=11, entity_key=None)
    return msgspec.structs.replace(letter, failed_at=failed_at)


def commit(client: redis.Redis, cid: str, email: str = EMAIL) -> None:
    Ordering(client).commit("spotler", "", [CommitItem(write=ContactWrite(
        contact_id=cid, fields=[FieldWrite("email", email, 10, 0)], person="P1", organisation="O1"))])


def conflict(cid: str) -> Conflict:
    email = EMAIL if cid == "7" else f"conflict.{cid}@voorbeeld.nl"
    return Conflict(contact_id=cid, field="email", afas_value=email, spotler_value=f"ander.{cid}@voorbeeld.nl",
                    agreed_value=None, rule="owner:afas", winner="afas", value=email)


def consent_record(cid: str, applied_at: int) -> ConsentRecord:
    return ConsentRecord(contact_id=cid, kind="permission", field="permissions.1", bit=1, new=False, old=True,
                         source="spotler", source_stamp=applied_at - 500, target="afas", applied_at=applied_at,
                         result="written")


def test_erase_removes_every_record_of_the_contact_and_keeps_a_tombstone(redis_client: redis.Redis) -> None:
    commit(redis_client, "7")
    commit(redis_client, "8", "blijft@voorbeeld.nl")
    RejectionStore(redis_client).add_many([
        Rejection(contact_id="7", field="Email", reason="invalid e-mail address"),
        Rejection(contact_id="7", field="bounce", reason="hard bounce", source="spotler"),
        Rejection(contact_id="8", field="Email", reason="invalid e-mail address"),
    ])
    ConflictStore(redis_client).add_many([conflict("7"), conflict("8")])
    store = DeadLetterStore(redis_client)
    store.add(batch_letter("7"))
    store.add(batch_letter("8", "7", "9"))
    redis_client.set(keys.bounce_marker("7", 123), 1)
    redis_client.set(keys.bounce_marker("70", 123), 1)
    Departed(redis_client).note(["7"], now=5.0)
    for into in ("spotler", "afas"):
        WritesInDoubt(redis_client, into).mark("7", {"permissions.1": True}, 1, {"permissions.1": 0})
    WritesInDoubt(redis_client, "afas").mark("8", {"permissions.1": True}, 1, {"permissions.1": 0})
    BeatenValues(redis_client).note([conflict("7")])
    trail = ConsentTrail(redis_client)
    trail.record([consent_record("7", 1000), consent_record("7", 2000), consent_record("8", 1500)])
    assert trail.blocked_flips([("7", True), ("8", True)]) == {"7": True, "8": True}
    assert EMAIL.encode() in dump(redis_client)

    report = erase(redis_client, ["7"], now=1234.0)

    assert msgspec.to_builtins(report) == {
        "contacts": ["7"], "agreed_state": 1, "rejections": 2, "conflicts": 1, "dead_letters": 2,
        "bounce_markers": 1, "departed": 1, "consent_records": 2, "journal": 1, "forgotten_at": 1234.0,
    }
    # The journal (its rejections and dead letters were journalled) goes too; the others' stays.
    assert redis_client.exists(journal_key("7")) == 0
    assert redis_client.exists(journal_key("8")) == 1
    everything = dump(redis_client)
    assert EMAIL.encode() not in everything
    assert b"x7@voorbeeld.nl" not in everything
    assert b"ander.7@voorbeeld.nl" not in everything
    assert b"Vergeetmenietje" in everything  # the other contacts' batch letter still holds theirs
    # The rest is untouched: the other contacts' state, records and letter items.
    assert AgreedStore(redis_client).get("8") == {"email": "blijft@voorbeeld.nl"}
    assert AgreedStore(redis_client).state("7") is None
    assert [r.contact_id for r in RejectionStore(redis_client).list()] == ["8"]
    assert [r.conflict.contact_id for r in ConflictStore(redis_client).list()] == ["8"]
    [left] = store.list()
    assert contacts_of(left) == ["8", "9"]
    assert left.entity_key == "contacts:8..9(2)"
    assert redis_client.exists(keys.bounce_marker("70", 123)) == 1
    assert Departed(redis_client).all() == []
    assert [redis_client.exists(keys.doubt(i, c)) for i, c in (("spotler", "7"), ("afas", "7"), ("afas", "8"))] \
        == [0, 0, 1]
    assert redis_client.keys(f"{keys.PREFIX}:beaten:*") == []
    assert Tombstones(redis_client).which(["7", "8"]) == {"7"}
    assert redis_client.zscore(keys.FORGOTTEN, "7") == 1234.0
    assert trail.timeline("7", now=10.0) == []
    assert [r.contact_id for r in trail.since(0, now=10.0)] == ["8"]
    assert redis_client.smembers(f"{keys.PREFIX}:consent:blocked") == {b"8"}
    assert [redis_client.zscore(f"{keys.PREFIX}:consent:{index}", "7") for index in ("t", "first")] == [None, None]


def test_a_tombstone_keeps_every_write_path_from_recreating_the_state(redis_client: redis.Redis) -> None:
    commit(redis_client, "7")
    erase(redis_client, ["7"])
    ordering = Ordering(redis_client)
    write = ContactWrite(contact_id="7", fields=[FieldWrite("email", EMAIL, 20, 0)])
    other = ContactWrite(contact_id="8", fields=[FieldWrite("email", "b@voorbeeld.nl", 20, 0)])

    lease = ordering.check("spotler", [write, other], lease_s=5)
    assert [(v.contact_id, v.forgotten, v.fresh) for v in lease.verdicts] == [
        ("7", True, []), ("8", False, ["email"])]
    assert redis_client.exists(keys.lease("7")) == 0  # no lease for a forgotten contact
    applied = ordering.commit("spotler", lease.token, [CommitItem(write=write), CommitItem(write=other)])
    assert [(a.contact_id, a.forgotten, a.applied) for a in applied] == [("7", True, []), ("8", False, ["email"])]
    ordering.stage("afas", [write])
    ordering.settle([write])
    ordering.touch([("7", 99)])
    assert redis_client.exists(keys.agreed("7")) == 0
    # Nor do the records that name contacts take it in.
    RejectionStore(redis_client).add_many([Rejection(contact_id="7", field="Email", reason="x")])
    ConflictStore(redis_client).add_many([conflict("7")])
    store = DeadLetterStore(redis_client)
    store.add(batch_letter("7"))
    store.add(batch_letter("7", "8"))
    assert RejectionStore(redis_client).count() == ConflictStore(redis_client).count() == 0
    assert [contacts_of(letter) for letter in store.list()] == [["8"]]


def test_the_retention_sweep_drops_old_records_and_old_tombstones(redis_client: redis.Redis) -> None:
    now = 100 * DAY
    RejectionStore(redis_client).add_many([Rejection(contact_id="1", field="Email", reason="x")], now=now - 31 * DAY)
    RejectionStore(redis_client).add_many([Rejection(contact_id="2", field="Email", reason="x")], now=now - 29 * DAY)
    ConflictStore(redis_client).add_many([conflict("1")], now=now - 31 * DAY)
    ConflictStore(redis_client).add_many([conflict("2")], now=now - 29 * DAY)
    store = DeadLetterStore(redis_client)
    store.add(batch_letter("1", failed_at=now - 31 * DAY))
    store.add(batch_letter("2", failed_at=now - 29 * DAY))
    Tombstones(redis_client).add(["3"], now=now - (TOMBSTONE_DAYS + 1) * DAY)
    Tombstones(redis_client).add(["4"], now=now - (TOMBSTONE_DAYS - 1) * DAY)
    ConsentTrail(redis_client).record([consent_record("5", int((now - 61 * DAY) * 1000)),
                                       consent_record("5", int((now - 59 * DAY) * 1000))])

    report = sweep(redis_client, retention_s=30 * DAY, now=now, consent_retention_s=60 * DAY)

    assert msgspec.to_builtins(report) == {"rejections": 1, "conflicts": 1, "dead_letters": 1, "tombstones": 1,
                                           "consent_records": 1}
    assert len(ConsentTrail(redis_client, retention_s=1000 * DAY).timeline("5", now=now)) == 1
    assert [r.contact_id for r in RejectionStore(redis_client).list()] == ["2"]
    assert [r.conflict.contact_id for r in ConflictStore(redis_client).list()] == ["2"]
    assert [contacts_of(letter) for letter in store.list()] == [["2"]]
    assert Tombstones(redis_client).which(["3", "4"]) == {"4"}
