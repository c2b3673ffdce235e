"""Producers and forgotten contacts: a tombstone is skipped; a departed contact is forgotten after FORGET_AFTER_DAYS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from tests.producers.conftest import Clock, Outbox, afas_producer, applied, rejections
from tests.producers.test_deletions import afas, producer, synced_elsewhere
from tests.producers.test_spotler_producer import Linked, linked, s

from connector.clients.afas import AfasClient
from connector.schemas.events import SpotlerBatch
from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.consent import ConsentRecord, ConsentTrail
from connector.state.departed import Departed
from connector.state.forget import erase
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.sync.rows import Rejection

__all__ = ["afas", "linked"]  # fixtures

T = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)


def test_both_producers_skip_a_forgotten_contact(linked: Linked, redis_client: redis.Redis) -> None:
    record = linked.synced(besides=set())
    cid = record.contact_id
    other = linked.synced(besides={cid})
    erase(redis_client, [cid])
    linked.at(s(5))
    linked.spotler.edit(cid, lastName="Vergeetmenietje")
    linked.spotler.bounce(cid, "HARDBOUNCE")
    linked.spotler.edit(other.contact_id, lastName="Blijft")
    linked.afas.edit("person", record.person_id, FiNm="Wilhelmina")

    spotler = linked.poll(s(10))
    assert spotler.forgotten == 2  # its feed item and its bounce
    assert {c.contact_id for c in linked.outbox.afas} == {other.contact_id}  # the rest goes on
    outbox = Outbox()
    afas = afas_producer(linked.afas_client, redis_client, outbox, Clock(s(20))).poll_once()
    assert afas.forgotten == 1
    assert cid not in outbox.sent_ids()
    assert AgreedStore(redis_client).state(cid) is None
    assert [r for r in rejections(redis_client, "spotler") | rejections(redis_client, "afas") if r[0] == cid] == []
    assert list(redis_client.scan_iter(match=keys.bounce_markers(cid))) == []


def test_a_departed_contact_is_forgotten_after_forget_after_days(afas: AfasClient, redis_client: redis.Redis) -> None:
    sent: list[SpotlerBatch] = []
    clock = Clock(T)
    producer(afas, redis_client, "ignore", sent, clock=clock).poll_once(full=True)
    applied(redis_client, [c for batch in sent for c in batch.changes])  # the first sync, written
    alive = next(c for batch in sent for c in batch.changes).contact_id
    synced_elsewhere(redis_client, ("900001", True))
    RejectionStore(redis_client).add_many([Rejection(contact_id="900001", field="Email", reason="x")],
                                          now=T.timestamp())
    # A contact noted long ago that AFAS lists again is back, never forgotten.
    Departed(redis_client).note([alive], now=(T - timedelta(days=40)).timestamp())

    def poll(days: float, *, full: bool = False) -> int:
        clock.now = T + timedelta(days=days)
        return producer(afas, redis_client, "ignore", sent, clock=clock,
                        forget_after_s=30 * 86400).poll_once(full=full).retention_forgotten

    assert poll(0, full=True) == 0
    assert Departed(redis_client).all() == ["900001"]
    assert poll(29) == 0
    assert AgreedStore(redis_client).state("900001") is not None
    assert poll(31) == 1
    assert AgreedStore(redis_client).state("900001") is None
    assert Tombstones(redis_client).which(["900001", alive]) == {"900001"}
    assert "900001" not in {r.contact_id for r in RejectionStore(redis_client).list()}
    assert Departed(redis_client).all() == []
    assert AgreedStore(redis_client).state(alive) is not None


def test_the_same_walk_found_gone_again_keeps_the_first_time_and_a_broken_filter_starts_no_clock(
    afas: AfasClient, redis_client: redis.Redis
) -> None:
    sent: list[SpotlerBatch] = []
    clock = Clock(T)
    producer(afas, redis_client, "ignore", sent, clock=clock).poll_once(full=True)
    applied(redis_client, [c for batch in sent for c in batch.changes])
    synced_elsewhere(redis_client, ("900001", True))
    producer(afas, redis_client, "ignore", sent, clock=clock).poll_once(full=True)
    clock.now = T + timedelta(days=3)
    producer(afas, redis_client, "ignore", sent, clock=clock).poll_once(full=True)
    assert Departed(redis_client).since("900001") == T.timestamp()
    # More gone at once than DELETIONS_MAX_SHARE: nobody's clock starts (without --yes).
    synced_elsewhere(redis_client, *[(str(900010 + n), True) for n in range(5)])
    producer(afas, redis_client, "ignore", sent, clock=clock).poll_once(full=True)
    assert Departed(redis_client).all() == ["900001"]


def test_the_afas_producers_housekeeping_drops_consent_records_past_their_retention(
    afas: AfasClient, redis_client: redis.Redis
) -> None:
    def record(cid: str, days_ago: float) -> ConsentRecord:
        at = int((T - timedelta(days=days_ago)).timestamp() * 1000)
        return ConsentRecord(contact_id=cid, kind="permission", field="permissions.1", new=False, bit=1,
                             source="spotler", source_stamp=at, target="afas", applied_at=at, result="written")

    ConsentTrail(redis_client).record([record("7", 800), record("8", 10)])
    sent: list[SpotlerBatch] = []
    producer(afas, redis_client, "ignore", sent, clock=Clock(T), consent_retention_s=730 * 86400).poll_once()
    everything = ConsentTrail(redis_client, retention_s=10_000 * 86400)
    assert ([r.contact_id for r in everything.timeline("7", now=T.timestamp())],
            [r.contact_id for r in everything.timeline("8", now=T.timestamp())]) == ([], ["8"])
