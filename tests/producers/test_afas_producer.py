"""The AFAS producer against the AFAS sandbox over HTTP and a real Redis.

Each sandbox is seeded under a frozen clock (every seeded modification date
lies before ``SEEDED``), and the producer's clock is set by the test, so which
rows a poll reads is decided by the edits a test makes, at the times it makes them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from tests.producers.conftest import (
    GETCONNECTOR,
    PAGE_SIZE,
    AfasSandbox,
    BrokerDown,
    Clock,
    Expected,
    Outbox,
    Recorder,
    Sandboxes,
    afas_producer,
    applied,
    filter_groups,
    pending_into_spotler,
    read_afas,
    rejections,
    states,
)

from connector.errors import ConnectorError
from connector.sandbox.afas.catalogue import CUSTOMER_TYPE, NEWSLETTER, PRODUCT_NEWS
from connector.schemas.events import ContactChange, field_writes
from connector.state.cursors import CursorStore
from connector.state.ordering import ContactWrite, Ordering
from connector.sync.rows import ContactRecord

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)  # 12:00 in Amsterdam (summer time)
SEEDED = T0 - timedelta(hours=3)
ROUTE = f"/connectors/{GETCONNECTOR}"
GE, GT = 2, 4  # AFAS operator codes
PRIVATE = "Particulieren"  # the seed's organisation of private persons (about 8 % of the contacts)


def at(moment: datetime, afas: AfasSandbox, clock: Clock) -> None:
    """Move the AFAS sandbox and the producer to ``moment``."""
    afas.set_clock(moment)
    clock.now = moment


def new_contact_change(record: ContactRecord) -> dict[str, object]:
    """What a contact the link never synced sends: every non-empty value and every bit."""
    return {name: value for name, value in record.values.items() if value is not None}


def private_contacts(expected: Expected) -> tuple[str, set[str]]:
    """The private persons' organisation number and its valid contacts."""
    numbers = {r.organisation_id for r in expected.valid.values() if r.values["organisation"] == PRIVATE}
    assert len(numbers) == 1
    number = numbers.pop()
    return number, {cid for cid, r in expected.valid.items() if r.organisation_id == number}


def single_person_contact(afas: AfasSandbox, expected: Expected, *, besides: set[str]) -> ContactRecord:
    """A valid contact whose person is a contact nowhere else (a person edit then shows in one row)."""
    for record in expected.valid.values():
        if record.contact_id not in besides and afas.person(record.person_id)["contacts"] == [int(record.contact_id)]:
            return record
    raise AssertionError("the seed has no person with a single contact")


def unblocked(expected: Expected, *, besides: set[str]) -> ContactRecord:
    return next(r for r in expected.valid.values() if not r.blocked and r.contact_id not in besides)


def test_first_poll_reads_the_whole_getconnector_and_enqueues_every_valid_contact_once_per_page(
    sandboxes: Sandboxes, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    afas = sandboxes.afas(9000, 1, SEEDED)
    expected = read_afas(afas)
    assert [len(k) for k in expected.keys] == [PAGE_SIZE, 9000 - PAGE_SIZE]  # a page boundary to cross
    recorder = Recorder()
    client = afas.client(recorder)
    sandboxes.close_later(client)
    outbox = Outbox()

    with caplog.at_level(logging.WARNING, logger="connector.producers.afas"):
        result = afas_producer(client, redis_client, outbox, Clock(T0)).poll_once()

    # The whole GetConnector, by key: no modification filter, the second page after the first's last key.
    reads = recorder.params(ROUTE)
    assert [filter_groups(p) for p in reads] == [[], [[("ContactId", GT, expected.keys[0][-1])]]]
    assert [(p["skip"], p["take"], p["orderbyfieldids"]) for p in reads] == [("0", str(PAGE_SIZE), "ContactId")] * 2
    assert "no AFAS cursor (a first sync, or Redis lost its data): reading the whole GetConnector" in caplog.text

    # Every valid contact once, in batches of 100 cut per page (flushed page by page).
    first, second = (len(page) for page in expected.pages)
    sizes = [100] * (first // 100) + [first % 100] + [100] * (second // 100) + [second % 100]
    assert [len(b.changes) for b in outbox.batches] == [s for s in sizes if s] == expected.batch_sizes()
    assert [[c.contact_id for c in b.changes] for b in outbox.batches] == [
        [r.contact_id for r in page[i:i + 100]] for page in expected.pages for i in range(0, len(page), 100)
    ]
    assert {b.run_id for b in outbox.batches} == {result.run_id}
    assert sorted(outbox.sent_ids(), key=int) == sorted(expected.valid, key=int)
    for change in outbox.changes:
        record = expected.valid[change.contact_id]
        assert change.changes == new_contact_change(record)
        assert (change.new, change.blocked) == (True, record.blocked)
        assert (change.person_id, change.organisation_id) == (record.person_id, record.organisation_id)
        assert change.stamps == dict.fromkeys(change.changes, record.stamp)
        assert change.bases == dict.fromkeys(change.changes, 0)

    # Every invalid row rejected with its field and reason; valid and rejected make up every row.
    assert set(expected.valid) | set(expected.rejected) == {k for page in expected.keys for k in page}
    assert rejections(redis_client, "afas") == {(cid, r.field, r.reason) for cid, r in expected.rejected.items()}
    assert {r.reason for r in expected.rejected.values()} == {
        "no e-mail address", "invalid e-mail address",
        "contact has no person (department or organisation contact)",
        "contact has no organisation (every contact must hang under an organisation)",
    }
    assert (result.read, result.changed, result.unchanged, result.rejected, result.enqueued_messages) == (
        9000, len(expected.valid), 0, len(expected.rejected), len(outbox.batches))

    # The cursor is the poll's start.
    assert CursorStore(redis_client, "afas").get() == T0
    assert (result.cursor_from, result.cursor_to) == (None, T0.isoformat())
    assert pending_into_spotler(redis_client) == set(expected.valid)


def test_the_lookback_rereads_65_minutes_before_the_cursor_and_no_further(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(300, 2, SEEDED)
    expected = read_afas(afas)
    early = unblocked(expected, besides=set())
    late = single_person_contact(afas, expected, besides={early.contact_id})
    clock = Clock(T0)
    at(T0 - timedelta(hours=2), afas, clock)
    afas.edit("contact", int(early.contact_id), **{NEWSLETTER: not early.values["permissions.1"]})
    at(T0 - timedelta(minutes=30), afas, clock)
    afas.edit("person", late.person_id, FiNm="Bartholomeus")  # seen through PersonModified only
    recorder = Recorder()
    client = afas.client(recorder)
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)

    at(T0, afas, clock)
    producer.poll_once()  # the first sync sees both edits
    first = {c.contact_id: c for c in outbox.changes}
    assert first[early.contact_id].changes["permissions.1"] is not early.values["permissions.1"]
    assert first[late.contact_id].changes["firstName"] == "Bartholomeus"
    applied(redis_client, outbox.changes)
    outbox.clear()
    recorder.clear()

    at(T0 + timedelta(minutes=1), afas, clock)
    result = producer.poll_once()

    since = "2024-06-03T10:55:00"  # the cursor (12:00 Amsterdam) minus 65 minutes, in local time, no "Z"
    assert [filter_groups(p) for p in recorder.params(ROUTE)] == [
        [[("ContactModified", GE, since)], [("PersonModified", GE, since)], [("OrganisationModified", GE, since)]]
    ]
    # The person edit 30 minutes before the cursor is read again; the contact edit 2 hours before is not.
    assert recorder.row_ids(ROUTE) == [[late.contact_id]]
    assert (result.read, result.unchanged, result.changed, result.already_pending) == (1, 1, 0, 0)
    assert outbox.batches == []
    assert CursorStore(redis_client, "afas").get() == T0 + timedelta(minutes=1)


def test_an_edit_in_the_repeated_autumn_hour_is_seen_by_the_next_poll(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(300, 3, datetime.fromisoformat("2024-10-26T12:00:00+02:00"))
    expected = read_afas(afas)
    contact = unblocked(expected, besides=set())
    clock = Clock(T0)
    recorder = Recorder()
    client = afas.client(recorder)
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)

    at(datetime.fromisoformat("2024-10-27T02:30:00+02:00"), afas, clock)  # the hour's first pass (summer time)
    afas.edit("contact", int(contact.contact_id), **{NEWSLETTER: not contact.values["permissions.1"]})
    at(datetime.fromisoformat("2024-10-27T02:40:00+02:00"), afas, clock)
    producer.poll_once()
    applied(redis_client, outbox.changes)
    outbox.clear()
    recorder.clear()

    # 30 minutes later in real time, 30 minutes *earlier* on Amsterdam's wall clock.
    at(datetime.fromisoformat("2024-10-27T02:10:00+01:00"), afas, clock)
    view = afas.edit("contact", int(contact.contact_id), **{PRODUCT_NEWS: not contact.values["permissions.2"]})
    assert view["ContactModified"] == "2024-10-27T02:10:00Z"  # before the cursor's local 02:40
    at(datetime.fromisoformat("2024-10-27T02:15:00+01:00"), afas, clock)
    result = producer.poll_once()

    since = "2024-10-27T01:35:00"  # 02:40 summer time minus 65 minutes
    assert [filter_groups(p) for p in recorder.params(ROUTE)] == [
        [[("ContactModified", GE, since)], [("PersonModified", GE, since)], [("OrganisationModified", GE, since)]]
    ]
    assert [(c.contact_id, c.changes) for c in outbox.changes] == [
        (contact.contact_id, {"permissions.2": not contact.values["permissions.2"]})
    ]
    assert result.changed == 1
    # The stamp read from local time may look older than the edit before it; the worker still applies it.
    change = outbox.changes[0]
    ordering = Ordering(redis_client)
    lease = ordering.check("spotler", [ContactWrite(contact_id=change.contact_id, fields=field_writes(change))],
                           lease_s=5)
    ordering.release(lease.token, [change.contact_id])
    assert [(v.fresh, v.superseded) for v in lease.verdicts] == [(["permissions.2"], [])]


def test_an_enqueue_failure_leaves_the_cursor_and_nothing_pending_and_the_next_poll_sends_it_all(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(3000, 4, SEEDED)
    expected = read_afas(afas)
    number, private = private_contacts(expected)
    assert len(private) > 200  # three batches at least: the second one fails
    clock = Clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)
    producer.poll_once()
    applied(redis_client, outbox.changes)
    outbox.clear()

    at(T0 + timedelta(minutes=1), afas, clock)
    afas.edit("organisation", number, **{CUSTOMER_TYPE: "Consument"})
    at(T0 + timedelta(minutes=2), afas, clock)
    outbox.fail_at = 2
    with pytest.raises(BrokerDown):
        producer.poll_once()

    assert CursorStore(redis_client, "afas").get() == T0
    assert pending_into_spotler(redis_client) == set()  # not even the batch that did go out
    first_try = set(outbox.sent_ids())
    assert len(outbox.batches) == 1
    assert len(first_try) == 100

    outbox.clear()
    outbox.fail_at = None
    at(T0 + timedelta(minutes=3), afas, clock)
    result = producer.poll_once()

    second_try = outbox.sent_ids()
    assert sorted(second_try) == sorted(private)  # each once, none missing
    assert first_try | set(second_try) == private
    assert {c.contact_id: c.changes for c in outbox.changes} == {cid: {"customerType": "Consument"} for cid in private}
    assert (result.changed, result.already_pending) == (len(private), 0)
    assert CursorStore(redis_client, "afas").get() == T0 + timedelta(minutes=3)


def test_a_first_sync_whose_enqueue_fails_on_the_second_page_resumes_with_what_was_not_enqueued(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(9000, 1, SEEDED)
    expected = read_afas(afas)
    first_page = {r.contact_id for r in expected.pages[0]}
    second_page = {r.contact_id for r in expected.pages[1]}
    clock = Clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)
    outbox.fail_at = expected.batches_of(slice(0, 1)) + 1  # the second page's first batch

    with pytest.raises(BrokerDown):
        producer.poll_once()

    assert CursorStore(redis_client, "afas").get() is None
    assert [len(b.changes) for b in outbox.batches] == expected.batch_sizes(slice(0, 1))
    assert pending_into_spotler(redis_client) == first_page  # flushed; the failed page noted nowhere
    enqueued = set(outbox.sent_ids())

    outbox.clear()
    outbox.fail_at = None
    at(T0 + timedelta(minutes=1), afas, clock)
    result = producer.poll_once()

    assert sorted(outbox.sent_ids()) == sorted(second_page)
    assert [len(b.changes) for b in outbox.batches] == expected.batch_sizes(slice(1, 2))
    assert result.already_pending == len(first_page)
    assert enqueued | set(outbox.sent_ids()) == set(expected.valid)
    assert CursorStore(redis_client, "afas").get() == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"maintenance": True}, 503), ({"error_rate": 1.0, "error_status": 500}, 500)],
    ids=["maintenance-503", "server-error-500"],
)
def test_a_first_sync_that_fails_reading_a_later_page_leaves_no_cursor_and_the_next_poll_sends_the_rest(
    sandboxes: Sandboxes, redis_client: redis.Redis, fault: dict[str, object], status: int
) -> None:
    afas = sandboxes.afas(9000, 1, SEEDED)
    expected = read_afas(afas)
    first_page = {r.contact_id for r in expected.pages[0]}

    def second_page_fails(request: httpx.Request, n: int) -> None:
        if n == 2:
            afas.faults(**fault)

    recorder = Recorder(second_page_fails)
    client = afas.client(recorder)
    sandboxes.close_later(client)
    outbox = Outbox()
    clock = Clock(T0)
    producer = afas_producer(client, redis_client, outbox, clock)

    with pytest.raises(ConnectorError) as failed:
        producer.poll_once()

    assert failed.value.status == status
    assert len(recorder.requests) == 2
    assert CursorStore(redis_client, "afas").get() is None
    assert set(outbox.sent_ids()) == first_page
    assert pending_into_spotler(redis_client) == first_page
    enqueued = set(outbox.sent_ids())

    afas.faults()  # AFAS is back
    recorder.before = None
    outbox.clear()
    at(T0 + timedelta(minutes=1), afas, clock)
    result = producer.poll_once()

    assert sorted(outbox.sent_ids()) == sorted(r.contact_id for r in expected.pages[1])
    assert result.already_pending == len(first_page)
    assert enqueued | set(outbox.sent_ids()) == set(expected.valid)
    assert rejections(redis_client, "afas") == {(cid, r.field, r.reason) for cid, r in expected.rejected.items()}
    assert CursorStore(redis_client, "afas").get() == T0 + timedelta(minutes=1)


def test_a_resync_while_the_first_sync_is_pending_enqueues_nothing_again(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(300, 5, SEEDED)
    expected = read_afas(afas)
    clock = Clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)
    producer.poll_once()
    assert sorted(outbox.sent_ids()) == sorted(expected.valid)
    outbox.clear()

    at(T0 + timedelta(minutes=1), afas, clock)
    result = producer.poll_once(full=True)

    assert outbox.batches == []
    assert (result.already_pending, result.changed, result.unchanged, result.enqueued_messages) == (
        len(expected.valid), 0, 0, 0)


def test_pending_changes_are_not_enqueued_again_and_once_applied_only_a_new_edit_goes_out(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(300, 5, SEEDED)
    expected = read_afas(afas)
    number, private = private_contacts(expected)
    clock = Clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)
    producer.poll_once()
    applied(redis_client, outbox.changes)
    outbox.clear()

    at(T0 + timedelta(minutes=1), afas, clock)
    afas.edit("organisation", number, **{CUSTOMER_TYPE: "Consument"})
    at(T0 + timedelta(minutes=2), afas, clock)
    producer.poll_once()
    sent: list[ContactChange] = outbox.changes
    assert {c.contact_id: c.changes for c in sent} == {cid: {"customerType": "Consument"} for cid in private}
    outbox.clear()

    # No worker yet: the lookback reads the same rows again, and finds each change pending.
    at(T0 + timedelta(minutes=3), afas, clock)
    again = producer.poll_once()
    assert outbox.batches == []
    assert (again.read, again.already_pending, again.changed, again.unchanged) == (
        len(private), len(private), 0, 0)

    applied(redis_client, sent)
    assert {cid: s.ps if s else None for cid, s in states(redis_client, sorted(private)).items()} == {
        cid: {} for cid in sorted(private)}  # applied: nothing pending any more
    contact = unblocked(expected, besides=private)
    at(T0 + timedelta(minutes=4), afas, clock)
    afas.edit("contact", int(contact.contact_id), **{NEWSLETTER: not contact.values["permissions.1"]})
    at(T0 + timedelta(minutes=5), afas, clock)
    result = producer.poll_once()

    assert [(c.contact_id, c.changes) for c in outbox.changes] == [
        (contact.contact_id, {"permissions.1": not contact.values["permissions.1"]})
    ]
    assert (result.read, result.changed, result.unchanged, result.already_pending) == (
        len(private) + 1, 1, len(private), 0)


def test_a_bad_yes_no_value_or_modification_date_rejects_that_row_only(
    sandboxes: Sandboxes, redis_client: redis.Redis
) -> None:
    afas = sandboxes.afas(300, 6, SEEDED)
    expected = read_afas(afas)
    text_in_yes_no = unblocked(expected, besides=set())
    bad_date = single_person_contact(afas, expected, besides={text_in_yes_no.contact_id})
    # The administrator built the Newsletter column on the contact's remark (a text field) and
    # PersonModified on the person's remark; someone typed "false" and "gisteren" into those.
    definition = afas.definition()
    sources = {"Newsletter": "contact.Re", "PersonModified": "person.Re"}
    for column in definition["columns"]:
        column["source"] = sources.get(column["id"], column["source"])
    afas.define(definition)
    afas.set_clock(T0 - timedelta(minutes=5))
    afas.edit("contact", int(text_in_yes_no.contact_id), Re="false")
    afas.edit("person", bad_date.person_id, Re="gisteren")
    afas.set_clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()

    result = afas_producer(client, redis_client, outbox, Clock(T0)).poll_once()  # no exception escapes

    not_boolean, not_a_date = "yes/no field is not a boolean (got str)", "modification date is not a date"
    assert rejections(redis_client, "afas") == {
        *((cid, r.field, r.reason) for cid, r in expected.rejected.items()),
        (text_in_yes_no.contact_id, "Newsletter", not_boolean),
        (bad_date.contact_id, "PersonModified", not_a_date),
    }
    assert sorted(outbox.sent_ids()) == sorted(set(expected.valid) - {text_in_yes_no.contact_id, bad_date.contact_id})
    assert (result.rejected_by_reason[not_boolean], result.rejected_by_reason[not_a_date]) == (1, 1)
    assert result.rejected == len(expected.rejected) + 2
    assert CursorStore(redis_client, "afas").get() == T0


@pytest.mark.parametrize(
    ("first_edit", "undo", "poll"),
    [
        pytest.param("2024-10-26T02:30:00+02:00", "2024-10-26T03:10:00+02:00", "2024-10-26T03:15:00+02:00",
                     id="an-ordinary-night"),
        pytest.param("2024-10-27T02:30:00+02:00", "2024-10-27T02:10:00+01:00", "2024-10-27T02:15:00+01:00",
                     id="undone-in-the-repeated-hour"),
    ],
)
def test_an_edit_undone_while_the_first_edit_is_still_pending_is_sent(
    sandboxes: Sandboxes, redis_client: redis.Redis, first_edit: str, undo: str, poll: str
) -> None:
    afas = sandboxes.afas(300, 3, datetime.fromisoformat("2024-10-25T12:00:00+02:00"))
    expected = read_afas(afas)
    contact = unblocked(expected, besides=set())
    was = contact.values["permissions.1"]
    clock = Clock(T0)
    client = afas.client()
    sandboxes.close_later(client)
    outbox = Outbox()
    producer = afas_producer(client, redis_client, outbox, clock)
    at(datetime.fromisoformat("2024-10-26T00:00:00+02:00"), afas, clock)
    producer.poll_once()
    applied(redis_client, outbox.changes)
    outbox.clear()

    at(datetime.fromisoformat(first_edit), afas, clock)
    afas.edit("contact", int(contact.contact_id), **{NEWSLETTER: not was})
    at(datetime.fromisoformat(first_edit) + timedelta(minutes=10), afas, clock)
    producer.poll_once()
    assert [(c.contact_id, c.changes) for c in outbox.changes] == [(contact.contact_id, {"permissions.1": not was})]
    outbox.clear()  # on its way to Spotler, no worker has applied it yet

    at(datetime.fromisoformat(undo), afas, clock)
    afas.edit("contact", int(contact.contact_id), **{NEWSLETTER: was})
    at(datetime.fromisoformat(poll), afas, clock)
    producer.poll_once()

    assert [(c.contact_id, c.changes) for c in outbox.changes] == [(contact.contact_id, {"permissions.1": was})]
