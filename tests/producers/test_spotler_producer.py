"""The Spotler producer against both sandboxes over HTTP and a real Redis.

Every test starts from a linked pair: the AFAS sandbox's contacts were synced
into the Spotler sandbox two days before ``T0`` by the AFAS producer and the
real Spotler writer, so the agreed state is what a running link would hold.
Spotler's clock is frozen, so every injected event has a known ``lastChanged``,
and the producer's clock is set by the test.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from tests.producers.conftest import (
    AfasSandbox,
    Clock,
    Expected,
    Outbox,
    Recorder,
    Sandboxes,
    SpotlerSandbox,
    afas_producer,
    pending_into_afas,
    read_afas,
    rejections,
    spotler_producer,
)

from connector.errors import RetriableError
from connector.producers.spotler import SpotlerProducer, bounce_marker
from connector.sandbox.afas.catalogue import NEWSLETTER
from connector.schemas.events import AfasChange, FieldWrite
from connector.schemas.runs import PollResult
from connector.state.agreed import AgreedStore
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.ordering import ContactWrite, Ordering
from connector.sync.merge import Conflict
from connector.sync.rows import ContactRecord
from connector.writers.spotler import write_batch

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
UNKNOWN = "990001"  # an externalId AFAS does not list
UPDATES, BOUNCES = "/contact/updates/list", "/contact/bounces/list"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Linked:
    """AFAS and Spotler as the link left them after its first sync; the Spotler producer to test."""

    def __init__(self, sandboxes: Sandboxes, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.afas: AfasSandbox = sandboxes.afas(60, 7, T0 - timedelta(days=3))
        self.spotler: SpotlerSandbox = sandboxes.spotler(T0 - timedelta(days=2))
        self.expected: Expected = read_afas(self.afas)
        self.afas_recorder, self.spotler_recorder = Recorder(), Recorder()
        self.afas_client = self.afas.client(self.afas_recorder)
        self.spotler_client = self.spotler.client(self.spotler_recorder)
        sandboxes.close_later(self.afas_client)
        sandboxes.close_later(self.spotler_client)
        first_sync = Outbox()
        afas_producer(self.afas_client, redis_client, first_sync, Clock(T0 - timedelta(days=2))).poll_once()
        ordering = Ordering(redis_client)
        for batch in first_sync.batches:
            outcome = write_batch(batch.changes, client=self.spotler_client, ordering=ordering,
                                  before_request=lambda: None, all_bits=(1, 2))
            assert len(outcome.written) == len(batch.changes)
        self.afas.set_clock(T0)
        self.spotler.set_clock(T0)
        self.afas_recorder.clear()
        self.spotler_recorder.clear()
        self.clock = Clock(T0)
        self.outbox = Outbox()
        self.producer: SpotlerProducer = spotler_producer(
            self.spotler_client, self.afas_client, redis_client, self.outbox, self.clock)

    def poll(self, moment: datetime) -> PollResult:
        self.clock.now = moment
        return self.producer.poll_once()

    def at(self, moment: datetime) -> None:
        """Spotler's clock: the next event is stamped ``moment``."""
        self.spotler.set_clock(moment)

    def opted_in(self, bit: int, *, besides: frozenset[str] | set[str] = frozenset()) -> ContactRecord:
        return next(r for r in self.expected.valid.values()
                    if r.values[f"permissions.{bit}"] is True and not r.blocked and r.contact_id not in besides)

    def synced(self, *, besides: set[str]) -> ContactRecord:
        return next(r for r in self.expected.valid.values() if not r.blocked and r.contact_id not in besides)

    def stamp(self, contact_id: str, field: str) -> int:
        state = AgreedStore(self.redis).state(contact_id)
        assert state is not None
        return state.stamp(field)

    def cursor(self) -> datetime | None:
        return CursorStore(self.redis, "spotler").get()


@pytest.fixture
def linked(sandboxes: Sandboxes, redis_client: redis.Redis) -> Linked:
    return Linked(sandboxes, redis_client)


def unsubscribe_change(linked: Linked, record: ContactRecord, bit: int, stamp: int, run_id: str) -> AfasChange:
    field = f"permissions.{bit}"
    return AfasChange(
        contact_id=record.contact_id, person_id=record.person_id, organisation_id=record.organisation_id,
        changes={field: False}, last_changed=stamp, run_id=run_id,
        stamps={field: stamp}, bases={field: linked.stamp(record.contact_id, field)},
        seen={field: record.values.get(field)},  # what AFAS held when the change was decided
    )


def bounce_change(record: ContactRecord, date: int, run_id: str) -> AfasChange:
    return AfasChange(
        contact_id=record.contact_id, person_id=record.person_id, organisation_id=record.organisation_id,
        changes={}, last_changed=date, bounce="HARDBOUNCE", run_id=run_id,
    )


def test_two_overlapping_polls_enqueue_one_unsubscribe_stamped_with_its_last_changed(linked: Linked) -> None:
    contact = linked.opted_in(1)
    linked.at(s(20))
    linked.spotler.unsubscribe(contact.contact_id, 1)
    stamp = linked.spotler.last_changed(contact.contact_id)
    assert stamp == ms(s(20))

    first = linked.poll(s(30))
    expected = unsubscribe_change(linked, contact, 1, stamp, first.run_id)
    second = linked.poll(s(60))  # [s(28) - 120 s, s(58)]: the unsubscribe is read again

    assert linked.outbox.afas == [expected]
    assert (first.enqueued_messages, second.enqueued_messages) == (1, 0)
    assert pending_into_afas(linked.redis) == {contact.contact_id}
    assert linked.outbox.batches == []


def test_a_poll_that_finds_the_unsubscribe_pending_reports_it_as_pending_not_changed(linked: Linked) -> None:
    contact = linked.opted_in(1)
    linked.at(s(20))
    linked.spotler.unsubscribe(contact.contact_id, 1)
    linked.poll(s(30))
    second = linked.poll(s(60))

    assert second.enqueued_messages == 0
    assert (second.changed, second.already_pending) == (0, 1)


def test_without_a_cursor_the_window_starts_24_hours_back_and_then_at_the_cursor_minus_the_overlap(
    linked: Linked, caplog: pytest.LogCaptureFixture
) -> None:
    old, recent = linked.opted_in(1), linked.opted_in(1, besides={linked.opted_in(1).contact_id})
    linked.at(T0 - timedelta(hours=25))
    linked.spotler.unsubscribe(old.contact_id, 1)
    linked.at(T0 - timedelta(hours=23))
    linked.spotler.unsubscribe(recent.contact_id, 1)
    linked.at(T0)
    assert linked.cursor() is None

    with caplog.at_level(logging.WARNING, logger="connector.producers.spotler"):
        first = linked.poll(s(10))
    end = s(8)  # now minus the 2 s safety lag
    start = end - timedelta(hours=24)
    assert ("no Spotler cursor (a first start, or Redis lost its data): reading Spotler's changes "
            "of the last 24 h") in caplog.text
    assert (first.cursor_from, first.cursor_to) == (start.isoformat(), end.isoformat())
    asked = [(p["fromDate"], p["toDate"]) for p in linked.spotler_recorder.params(UPDATES)]
    assert asked == [("2024-06-02T10:00:08+00:00", "2024-06-03T10:00:08+00:00")]
    assert [(p["fromDate"], p["toDate"]) for p in linked.spotler_recorder.params(BOUNCES)] == asked
    assert [c.contact_id for c in linked.outbox.afas] == [recent.contact_id]  # 23 h back in, 25 h back out
    assert linked.cursor() == end

    caplog.clear()
    linked.spotler_recorder.clear()
    with caplog.at_level(logging.WARNING, logger="connector.producers.spotler"):
        second = linked.poll(s(70))
    assert "no Spotler cursor" not in caplog.text
    assert (second.cursor_from, second.cursor_to) == ((end - timedelta(seconds=120)).isoformat(), s(68).isoformat())
    asked = [(p["fromDate"], p["toDate"]) for p in linked.spotler_recorder.params(UPDATES)]
    assert asked == [("2024-06-03T09:58:08+00:00", "2024-06-03T10:01:08+00:00")]
    assert linked.cursor() == s(68)


def test_with_afas_unavailable_the_poll_fails_whole_and_the_next_one_sends_every_unsubscribe_and_bounce(
    linked: Linked,
) -> None:
    linked.poll(s(10))
    cursor = linked.cursor()
    assert cursor == s(8)
    one = linked.opted_in(1)
    two = linked.opted_in(2, besides={one.contact_id})
    hard = [linked.synced(besides={one.contact_id, two.contact_id})]
    hard.append(linked.synced(besides={one.contact_id, two.contact_id, hard[0].contact_id}))
    linked.at(s(20))
    linked.spotler.unsubscribe(one.contact_id, 1)
    linked.at(s(21))
    linked.spotler.unsubscribe(two.contact_id, 2)
    for n, record in enumerate(hard):
        linked.at(s(22 + n))
        linked.spotler.bounce(record.contact_id, "HARDBOUNCE")
    linked.afas.faults(maintenance=True)

    with pytest.raises(RetriableError) as failed:
        linked.poll(s(30))

    assert failed.value.status == 503
    assert linked.cursor() == cursor
    assert linked.outbox.afas == []
    assert pending_into_afas(linked.redis) == set()
    assert linked.redis.keys("connector:feed:bounce:*") == []

    linked.afas.faults()
    result = linked.poll(s(40))

    assert {(c.contact_id, c.bounce, tuple(c.changes.items()), c.last_changed) for c in linked.outbox.afas} == {
        (one.contact_id, None, (("permissions.1", False),), ms(s(20))),
        (two.contact_id, None, (("permissions.2", False),), ms(s(21))),
        *((r.contact_id, "HARDBOUNCE", (), ms(s(22 + n))) for n, r in enumerate(hard)),
    }
    assert len(linked.outbox.afas) == 4
    assert pending_into_afas(linked.redis) == {one.contact_id, two.contact_id}
    assert all(linked.redis.exists(bounce_marker(r.contact_id, ms(s(22 + n)))) for n, r in enumerate(hard))
    assert result.enqueued_messages == 4
    assert linked.cursor() == s(38)


def test_a_hard_bounce_goes_out_once_a_soft_one_never_and_one_of_a_contact_afas_lacks_is_rejected(
    linked: Linked,
) -> None:
    hard = linked.synced(besides=set())
    soft = linked.synced(besides={hard.contact_id})
    linked.at(s(5))
    linked.spotler.seed({"externalId": UNKNOWN, "properties": {"email": "onbekend@example.nl"}})
    linked.at(s(20))
    linked.spotler.bounce(hard.contact_id, "HARDBOUNCE")
    linked.at(s(21))
    linked.spotler.bounce(soft.contact_id, "SOFTBOUNCE")
    linked.at(s(22))
    linked.spotler.bounce(UNKNOWN, "HARDBOUNCE")
    date = linked.spotler.last_changed(hard.contact_id)
    assert date == ms(s(20))

    first = linked.poll(s(30))
    second = linked.poll(s(60))  # the overlap reads all three bounces again

    assert linked.outbox.afas == [bounce_change(hard, date, first.run_id)]
    assert (first.enqueued_messages, second.enqueued_messages) == (1, 0)
    assert linked.redis.exists(bounce_marker(hard.contact_id, date)) == 1
    assert rejections(linked.redis, "spotler") == {
        (UNKNOWN, "externalId", "unknown to AFAS: the link never creates contacts in AFAS"),
        (UNKNOWN, "bounce", "hard bounce of a contact unknown to AFAS"),
    }
    assert linked.outbox.batches == []


def test_a_contact_afas_does_not_list_is_rejected_and_never_created(linked: Linked) -> None:
    linked.at(s(5))
    linked.spotler.seed({"externalId": UNKNOWN, "properties": {"email": "onbekend@example.nl"}})
    linked.at(s(20))
    linked.spotler.unsubscribe(UNKNOWN, 1)

    result = linked.poll(s(30))

    assert rejections(linked.redis, "spotler") == {
        (UNKNOWN, "externalId", "unknown to AFAS: the link never creates contacts in AFAS")}
    assert (linked.outbox.afas, linked.outbox.batches) == ([], [])
    assert (result.rejected, result.changed) == (1, 0)
    assert AgreedStore(linked.redis).state(UNKNOWN) is None
    assert [p["filterfieldids"] for p in linked.afas_recorder.params("/connectors/Spotler_Contacts")] == ["ContactId"]


def test_an_opt_out_of_a_contact_without_agreed_state_is_kept_and_recorded_as_a_conflict(linked: Linked) -> None:
    contact = linked.opted_in(1)
    AgreedStore(linked.redis).erase([contact.contact_id])  # Redis lost what the link agreed on for it
    linked.at(s(20))
    linked.spotler.unsubscribe(contact.contact_id, 1)
    stamp = ms(s(20))

    result = linked.poll(s(30))

    [change] = linked.outbox.afas
    assert (change.contact_id, change.person_id, change.organisation_id) == (
        contact.contact_id, contact.person_id, contact.organisation_id)
    assert (change.changes, change.last_changed, change.bounce) == ({"permissions.1": False}, stamp, None)
    assert [r.conflict for r in ConflictStore(linked.redis).list()] == [Conflict(
        contact_id=contact.contact_id, field="permissions.1", afas_value=True, spotler_value=False,
        agreed_value=None, rule="opt-out wins", winner="spotler", value=False,
    )]
    assert linked.outbox.batches == []  # nothing goes back to Spotler: it already holds the rest
    state = AgreedStore(linked.redis).state(contact.contact_id)
    assert state is not None
    assert state.values == {n: v for n, v in contact.values.items() if n != "permissions.1" and v is not None}
    assert {n: (p.value, p.stamp) for n, p in state.pa.items()} == {"permissions.1": (False, stamp)}
    assert (state.p, state.o) == (contact.person_id, contact.organisation_id)
    assert result.changed == 1


def _spoil(request: httpx.Request, body: bytes, *, contact: str, bounce: str) -> bytes:
    """One item of each feed page made malformed on its way from the sandbox to the client."""
    path = request.url.path
    if not path.endswith((UPDATES, BOUNCES)) or not body.strip():
        return body
    page: Any = json.loads(body)
    items: list[dict[str, Any]] = page if isinstance(page, list) else page.get("contacts", page.get("bounces", []))
    for item in items:
        if path.endswith(UPDATES) and item["externalId"] == contact:
            for permission in item["properties"]["permissions"]:
                permission["enabled"] = str(permission["enabled"]).lower()  # "false", a string
        if path.endswith(BOUNCES) and item["contact"]["externalId"] == bounce:
            item["date"] = "gisteren"
    return json.dumps(page).encode()


def test_a_malformed_feed_item_is_rejected_with_its_field_and_the_rest_of_its_page_goes_on(linked: Linked) -> None:
    spoilt = linked.opted_in(1)
    others = [linked.opted_in(1, besides={spoilt.contact_id})]
    others.append(linked.opted_in(1, besides={spoilt.contact_id, others[0].contact_id}))
    taken = {spoilt.contact_id, *(o.contact_id for o in others)}
    bad_bounce = linked.synced(besides=taken)
    good_bounce = linked.synced(besides=taken | {bad_bounce.contact_id})
    for n, record in enumerate([spoilt, *others]):
        linked.at(s(20 + n))
        linked.spotler.unsubscribe(record.contact_id, 1)
    linked.at(s(30))
    linked.spotler.bounce(bad_bounce.contact_id, "HARDBOUNCE")
    linked.at(s(31))
    linked.spotler.bounce(good_bounce.contact_id, "HARDBOUNCE")
    linked.spotler_recorder.edit = lambda request, body: _spoil(
        request, body, contact=spoilt.contact_id, bounce=bad_bounce.contact_id)

    result = linked.poll(s(40))

    assert rejections(linked.redis, "spotler") == {
        (spoilt.contact_id, "permissions.1",
         "unreadable updates feed item: enabled must be a JSON boolean, got a string"),
        (bad_bounce.contact_id, "date", "unreadable bounces feed item: Expected `int`, got `str`"),
    }
    assert {(c.contact_id, c.bounce, tuple(c.changes.items())) for c in linked.outbox.afas} == {
        *((o.contact_id, None, (("permissions.1", False),)) for o in others),
        (good_bounce.contact_id, "HARDBOUNCE", ()),
    }
    assert len(linked.outbox.afas) == 3
    assert result.rejected == 2
    assert linked.cursor() == s(38)


def test_a_hard_bounce_whose_afas_lookup_meets_a_503_fails_the_poll_instead_of_being_rejected(
    linked: Linked,
) -> None:
    contact = linked.synced(besides=set())
    AgreedStore(linked.redis).erase([contact.contact_id])  # no agreed state: the bounce needs AFAS's row
    linked.at(s(20))
    linked.spotler.bounce(contact.contact_id, "HARDBOUNCE")
    linked.at(s(21))
    linked.spotler.edit(contact.contact_id, city="Zwolle")  # its newest version lies after this window
    linked.afas.faults(maintenance=True)

    with pytest.raises(RetriableError):
        linked.poll(s(22))  # the window ends at s(20): the bounce is in it, the edit is not

    assert rejections(linked.redis, "spotler") == set()
    assert linked.cursor() is None


def test_an_afas_opt_in_on_its_way_loses_to_a_later_spotler_change_with_the_bit_off(linked: Linked) -> None:
    """Spotler shows a contact as it is now: an unsubscribe made alongside another edit shows only that
    the contact changed. An AFAS opt-in older than such a change never reaches Spotler: the opt-out wins."""
    contact = next(r for r in linked.expected.valid.values()
                   if r.values["permissions.1"] is False and not r.blocked)
    cid = contact.contact_id
    linked.afas.set_clock(s(10))
    linked.afas.edit("contact", cid, **{NEWSLETTER: True})  # a salesperson ticks the newsletter in AFAS
    opt_in = FieldWrite("permissions.1", True, int(s(10).timestamp() * 1000), linked.stamp(cid, "permissions.1"))
    ordering = Ordering(linked.redis)
    ordering.stage("spotler", [ContactWrite(contact_id=cid, fields=[opt_in])])  # on its way, not yet written
    # Our own writes are told apart by time: Spotler's clock against Redis's (real time here).
    edited = datetime.now(UTC) + timedelta(seconds=2)
    linked.at(edited)
    linked.spotler.edit(cid, lastName="Zelf-Gewijzigd")  # the recipient changes the profile; the bit stays off

    linked.poll(edited + timedelta(seconds=10))

    [back] = [c for c in linked.outbox.afas if c.contact_id == cid]
    assert back.changes["permissions.1"] is False
    conflicts = [r.conflict for r in ConflictStore(linked.redis).list() if r.conflict.contact_id == cid]
    assert [(c.field, c.rule, c.winner) for c in conflicts if c.field == "permissions.1"] == [
        ("permissions.1", "opt-out wins", "spotler")]
    # The opt-in still on its way is held back by the opt-out the producer just staged.
    lease = ordering.check("spotler", [ContactWrite(contact_id=cid, fields=[opt_in])], lease_s=5)
    assert lease.verdicts[0].superseded == ["permissions.1"]


def test_a_conflicts_loser_does_not_win_again_when_another_field_moves_both_stamps(linked: Linked) -> None:
    """AFAS and the recipient both changed the last name; Spotler's (newer) won and is on its way to AFAS.
    Before it lands, both sides edit the first name: the AFAS row's stamp and Spotler's lastChanged both
    move. Deciding the contact again must not read AFAS's losing last name as a newer AFAS edit."""
    contact = linked.synced(besides=set())
    cid = contact.contact_id
    base = datetime.now(UTC) + timedelta(seconds=2)  # later than the first sync's writes (Redis's clock)
    linked.afas.set_clock(base)
    linked.afas.edit("person", contact.person_id, LaNm="Jansen-58")
    linked.at(base + timedelta(seconds=10))
    linked.spotler.edit(cid, lastName="Jansen-96")
    linked.poll(base + timedelta(seconds=20))
    [won] = [c for c in linked.outbox.afas if c.contact_id == cid]
    assert won.changes == {"lastName": "Jansen-96"}
    linked.outbox.clear()
    # The winner has not landed yet; the first name is edited on both sides, AFAS last.
    linked.at(base + timedelta(seconds=30))
    linked.spotler.edit(cid, firstName="Anna-1")
    linked.afas.set_clock(base + timedelta(seconds=40))
    linked.afas.edit("person", contact.person_id, FiNm="Anna-2")

    linked.poll(base + timedelta(seconds=50))

    assert [c.changes.get("lastName") for c in linked.outbox.changes if "lastName" in c.changes] == []
    state = AgreedStore(linked.redis).state(cid)
    assert state is not None
    assert state.pending("afas", time.time())["lastName"].value == "Jansen-96"  # the winner still goes in
    assert "lastName" not in state.pending("spotler", time.time())
    conflicts = [r.conflict for r in ConflictStore(linked.redis).list() if r.conflict.contact_id == cid]
    assert sorted((c.field, c.winner) for c in conflicts) == [("firstName", "afas"), ("lastName", "spotler")]

    # The AFAS producer, deciding the same row, leaves the last name alone too.
    outbox = Outbox()
    afas_producer(linked.afas_client, linked.redis, outbox, Clock(base + timedelta(seconds=50)),
                  spotler=linked.spotler_client).poll_once()
    assert [c.changes.get("lastName") for c in outbox.changes if "lastName" in c.changes] == []
