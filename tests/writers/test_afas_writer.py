"""Writing Spotler changes back to AFAS: the fewest PUTs, bounces, redelivery and errors.

Against the real AFAS sandbox over HTTP and a real Redis; calls are counted by
the sandbox itself (``GET /_sandbox/requests``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
import redis

from connector.clients.afas import AfasClient
from connector.errors import FatalError, RateLimited, RecordRejected, RetriableError
from connector.sandbox.afas.app import DEFAULT_TOKEN, AfasSandbox
from connector.sandbox.afas.catalogue import EMAIL_BOUNCED, NEWSLETTER
from connector.sandbox.afas.testing import running_sandbox
from connector.schemas.events import AfasChange, FieldWrite, Value, field_writes
from connector.schemas.mapping import BounceRule, Mapping, load_mapping
from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.keys import COUNTERS
from connector.state.ordering import CommitItem, ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.writers.afas import UNMAPPED_BOUNCE_REASON, AfasOutcome, write_change

MAPPING = load_mapping(None)
EMAIL = "nieuw.adres@example.org"
# Spotler-side field -> the column that shows it in the sandbox's contact view.
COLUMN = {
    "email": "Email",
    "firstName": "FirstName",
    "lastName": "LastName",
    "customerType": "CustomerType",
    "permissions.1": "Newsletter",
}


class Sandbox(msgspec.Struct):
    url: str
    app: AfasSandbox
    http: httpx.Client
    client: AfasClient

    def contacts(self) -> list[dict[str, Any]]:
        """Person contacts under an organisation that still receive the newsletter."""
        with self.app.afas.lock:
            ids = [
                c.cd_id
                for c in self.app.afas.store.contacts.values()
                if c.kind == "PRS" and c.org and c.person and c.fields.get(NEWSLETTER) is True
            ]
        return [self.contact(cd_id) for cd_id in ids]

    def contact(self, cd_id: int | str) -> dict[str, Any]:
        response = self.http.get(f"/_sandbox/contacts/{cd_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def puts(self) -> dict[str, int]:
        routes = self.http.get("/_sandbox/requests").json()["routes"]
        return {r.rpartition("/")[2]: n for r, n in routes.items() if r.startswith("PUT ")}

    def faults(self, **faults: Any) -> None:
        self.http.put("/_sandbox/faults", json=faults).raise_for_status()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with (
        running_sandbox(contacts=60, seed=3) as (server, app),
        httpx.Client(base_url=server.url, timeout=10) as http,
        AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10) as client,
    ):
        yield Sandbox(server.url, app, http, client)


Write = Callable[..., AfasOutcome]


@pytest.fixture
def write(sandbox: Sandbox, redis_client: redis.Redis) -> Write:
    """``write(change, mapping=MAPPING)`` with real stores on the flushed Redis."""

    def run(change: AfasChange, mapping: Mapping = MAPPING) -> AfasOutcome:
        return write_change(
            change,
            client=sandbox.client,
            mapping=mapping,
            ordering=Ordering(redis_client),
            redis_client=redis_client,
        )

    return run


_serial = itertools.count()


def change_for(contact: dict[str, Any], changes: dict[str, Value], *, stamp: int | None = None,
               base: int = 0, **extra: Any) -> AfasChange:
    """A Spotler change decided against agreed stamp ``base``, stamped ``stamp`` (a fresh one by default)."""
    stamp = 1_700_000_000_000 + next(_serial) if stamp is None else stamp
    return AfasChange(
        contact_id=str(contact["ContactId"]),
        person_id=str(contact["PersonNo"]),
        organisation_id=str(contact["OrganisationId"]),
        changes=changes,
        stamps=dict.fromkeys(changes, stamp),
        bases=dict.fromkeys(changes, base),
        **extra,
    )


def counters(client: redis.Redis) -> dict[str, int]:
    return {keys.as_bytes(k).decode(): int(v) for k, v in client.hgetall(COUNTERS).items()}


def test_an_opt_out_is_one_put_of_the_contact(sandbox: Sandbox, write: Write, redis_client: redis.Redis) -> None:
    contact = sandbox.contacts()[0]
    outcome = write(change_for(contact, {"permissions.1": False}))

    assert outcome.written == ["KnContact"]
    assert sandbox.puts() == {"KnContact": 1}
    after = sandbox.contact(contact["ContactId"])
    assert after["Newsletter"] is False
    assert after["fields"][NEWSLETTER] is False
    assert after["ProductNews"] == contact["ProductNews"]
    assert AgreedStore(redis_client).get(str(contact["ContactId"])) == {"permissions.1": False}
    assert counters(redis_client) == {"afas_calls": 1, "afas_changes_written": 1}


@pytest.mark.parametrize(
    ("changes", "expected_puts"),
    [
        ({"email": EMAIL}, {"KnContact": 1}),
        ({"firstName": "Anne-Fleur", "lastName": "Visser"}, {"KnPerson": 1}),
        ({"customerType": "Partner"}, {"KnOrganisation": 1}),
        ({"firstName": "Anne-Fleur", "lastName": "Visser", "permissions.1": False}, {"KnContact": 1, "KnPerson": 1}),
        (
            {"email": EMAIL, "lastName": "Visser", "customerType": "Partner", "permissions.1": False},
            {"KnContact": 1, "KnPerson": 1, "KnOrganisation": 1},
        ),
    ],
    ids=["email", "names", "customer-type", "names+opt-out", "all-three"],
)
def test_only_the_entities_whose_fields_changed_are_written(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis, changes: dict[str, Value], expected_puts: dict[str, int]
) -> None:
    contact = sandbox.contacts()[0]
    outcome = write(change_for(contact, changes))

    assert sandbox.puts() == expected_puts
    assert outcome.calls == sum(expected_puts.values())
    after = sandbox.contact(contact["ContactId"])
    assert {name: after[COLUMN[name]] for name in changes} == changes
    assert counters(redis_client)["afas_calls"] == sum(expected_puts.values())


def test_one_way_fields_cause_no_call(sandbox: Sandbox, write: Write, redis_client: redis.Redis) -> None:
    contact = sandbox.contacts()[0]
    outcome = write(change_for(contact, {"organisation": "Nieuwe Naam BV", "city": "Zwolle", "sector": "0200"}))

    assert outcome.calls == 0
    assert sandbox.puts() == {}
    after = sandbox.contact(contact["ContactId"])
    assert (after["OrganisationName"], after["City"], after["Sector"]) == (
        contact["OrganisationName"],
        contact["City"],
        contact["Sector"],
    )
    # AFAS did not take them, so they are not agreed either.
    assert AgreedStore(redis_client).get(str(contact["ContactId"])) is None


def test_the_agreed_state_takes_only_what_went_back(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    first = sandbox.contacts()[0]
    write(change_for(first, {"permissions.1": False, "city": "Zwolle"}))

    assert AgreedStore(redis_client).get(str(first["ContactId"])) == {"permissions.1": False}


def test_a_hard_bounce_sets_the_mapped_yes_no_field(sandbox: Sandbox, write: Write) -> None:
    contact = sandbox.contacts()[0]
    assert contact["fields"][EMAIL_BOUNCED] is False
    write(change_for(contact, {}, bounce="HARDBOUNCE"))

    assert sandbox.puts() == {"KnContact": 1}
    after = sandbox.contact(contact["ContactId"])
    assert after["fields"][EMAIL_BOUNCED] is True
    assert after["Blocked"] is False
    assert after["Newsletter"] is True  # a bounce is not an opt-out


def test_a_hard_bounce_can_block_the_contact(sandbox: Sandbox, write: Write) -> None:
    contact = sandbox.contacts()[0]
    blocking = msgspec.structs.replace(MAPPING, bounce=BounceRule(block_contact=True))
    write(change_for(contact, {}, bounce="HARDBOUNCE"), mapping=blocking)

    assert sandbox.puts() == {"KnContact": 1}
    after = sandbox.contact(contact["ContactId"])
    assert after["Blocked"] is True
    assert after["fields"][EMAIL_BOUNCED] is False


def test_an_unmapped_hard_bounce_is_recorded_not_written(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    contact = sandbox.contacts()[0]
    nowhere = msgspec.structs.replace(MAPPING, bounce=BounceRule())
    with caplog.at_level(logging.WARNING, logger="connector.writers.afas"):
        outcome = write(change_for(contact, {}, bounce="HARDBOUNCE"), mapping=nowhere)

    assert outcome.bounce_unmapped
    assert outcome.calls == 0
    assert sandbox.puts() == {}
    assert sandbox.contact(contact["ContactId"])["Newsletter"] is True
    [record] = RejectionStore(redis_client).list(source="spotler")
    assert (record.contact_id, record.field, record.reason) == (
        str(contact["ContactId"]),
        "bounce",
        UNMAPPED_BOUNCE_REASON,
    )
    assert f"contact {contact['ContactId']}: hard bounce not written" in caplog.text


def test_an_unmapped_bounce_does_not_stop_the_other_fields(sandbox: Sandbox, write: Write) -> None:
    contact = sandbox.contacts()[0]
    nowhere = msgspec.structs.replace(MAPPING, bounce=BounceRule())
    outcome = write(change_for(contact, {"permissions.1": False}, bounce="HARDBOUNCE"), mapping=nowhere)

    assert outcome.bounce_unmapped
    assert sandbox.puts() == {"KnContact": 1}
    assert sandbox.contact(contact["ContactId"])["fields"][EMAIL_BOUNCED] is False


def test_a_redelivered_change_writes_nothing_again(sandbox: Sandbox, write: Write, redis_client: redis.Redis) -> None:
    contact = sandbox.contacts()[0]
    change = change_for(contact, {"firstName": "Anne-Fleur", "permissions.1": False})
    write(change)
    again = write(change)

    assert again.calls == 0
    assert again.superseded == ["firstName", "permissions.1"]
    assert sandbox.puts() == {"KnContact": 1, "KnPerson": 1}
    assert counters(redis_client) == {"afas_calls": 2, "afas_changes_written": 1, "afas_superseded": 2}


def test_a_redelivery_after_a_partial_write_writes_only_the_rest(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    contact = sandbox.contacts()[0]
    change = change_for(contact, {"firstName": "Anne-Fleur", "permissions.1": False})
    # The first delivery got as far as committing KnContact's field, then died.
    ordering = Ordering(redis_client)
    [newsletter] = [f for f in field_writes(change) if f.name == "permissions.1"]
    ordering.commit("afas", "", [CommitItem(write=ContactWrite(contact_id=change.contact_id, fields=[newsletter]))])
    outcome = write(change)

    assert (outcome.written, outcome.superseded) == (["KnPerson"], ["permissions.1"])
    assert sandbox.puts() == {"KnPerson": 1}


def test_an_older_change_retried_after_a_newer_one_is_superseded(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    contact = sandbox.contacts()[0]
    older = change_for(contact, {"firstName": "Eerst"}, stamp=1_700_000_001_000)
    newer = change_for(contact, {"firstName": "Daarna"}, stamp=1_700_000_002_000)  # decided on the same base
    assert write(newer).written == ["KnPerson"]
    late = write(older)

    assert (late.calls, late.superseded) == (0, ["firstName"])
    assert sandbox.contact(contact["ContactId"])["FirstName"] == "Daarna"
    assert AgreedStore(redis_client).get(change_for(contact, {}).contact_id) == {"firstName": "Daarna"}
    # A change recomputed against the newer base is applied, not taken for a duplicate.
    state = AgreedStore(redis_client).state(older.contact_id)
    assert state is not None
    again = change_for(contact, {"firstName": "Eerst"}, stamp=1_700_000_001_000, base=state.stamp("firstName"))
    assert write(again).written == ["KnPerson"]
    assert sandbox.contact(contact["ContactId"])["FirstName"] == "Eerst"


def test_a_contact_leased_by_another_worker_is_retried_later(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    contact = sandbox.contacts()[0]
    change = change_for(contact, {"permissions.1": False})
    redis_client.set(keys.lease(change.contact_id), "another-worker", px=60_000)

    with pytest.raises(RateLimited) as raised:
        write(change)
    assert raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 2
    assert sandbox.puts() == {}


def test_a_validation_failure_is_fatal_with_the_afas_reference(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    contact = sandbox.contacts()[0]
    change = msgspec.structs.replace(change_for(contact, {"firstName": "Anne-Fleur"}), person_id="999999")

    with pytest.raises(RecordRejected) as raised:
        write(change)
    assert isinstance(raised.value, FatalError)
    assert raised.value.detail is not None
    assert "(999999) does not exist" in raised.value.detail
    assert "profitLogReference" in raised.value.detail
    assert sandbox.puts() == {"KnPerson": 1}
    assert counters(redis_client) == {"afas_calls": 1}
    assert AgreedStore(redis_client).get(change.contact_id) is None


def test_maintenance_is_retriable_and_the_retry_writes(sandbox: Sandbox, write: Write) -> None:
    contact = sandbox.contacts()[0]
    change = change_for(contact, {"permissions.1": False})
    sandbox.faults(maintenance=True, maintenance_retry_after_s=90)

    with pytest.raises(RetriableError) as raised:
        write(change)
    assert (raised.value.status, raised.value.retry_after) == (503, 90)
    assert sandbox.contact(contact["ContactId"])["Newsletter"] is True

    sandbox.faults()  # maintenance over: the lease was given back, so the retry writes
    assert write(change).written == ["KnContact"]
    assert sandbox.contact(contact["ContactId"])["Newsletter"] is False


def test_a_change_that_waited_leaves_out_what_afas_changed_since(
    sandbox: Sandbox, redis_client: redis.Redis
) -> None:
    contact = sandbox.contacts()[0]
    cid = str(contact["ContactId"])
    ordering = Ordering(redis_client)
    # What the link last agreed on for this contact: AFAS's current first name and newsletter.
    ordering.settle([ContactWrite(contact_id=cid, fields=[
        FieldWrite("firstName", contact["FirstName"], 1_000, 0), FieldWrite("permissions.1", True, 1_000, 0)])])
    # A Spotler edit made a while ago (stamp in the past) that waited; meanwhile someone edits the
    # first name in AFAS (the sandbox stamps it now).
    waited = change_for(contact, {"firstName": "Uit-Spotler", "permissions.1": False}, stamp=1_000_000, base=1_000)
    http = sandbox.http.post("/_sandbox/edit", json={"entity": "person", "id": contact["PersonNo"],
                                                     "fields": {"FiNm": "In-AFAS"}})
    http.raise_for_status()

    def row(contact_id: str) -> dict[str, Any] | None:
        return sandbox.client.rows_by_ids("Spotler_Contacts", key="ContactId", ids=[contact_id]).get(contact_id)

    outcome = write_change(waited, client=sandbox.client, mapping=MAPPING, ordering=ordering,
                           redis_client=redis_client, recent=row)
    after = sandbox.contact(cid)
    assert (after["FirstName"], after["Newsletter"]) == ("In-AFAS", False)  # AFAS's newer edit stands
    assert (outcome.written, outcome.superseded) == (["KnContact"], ["firstName"])


def test_a_waited_conflict_win_is_written_when_afas_still_holds_the_value_it_beat(
    sandbox: Sandbox, redis_client: redis.Redis
) -> None:
    """A Spotler edit that won a conflict against AFAS's last name; while it waited, another field of the
    row was edited in AFAS (the row's stamp moved), the last name was not: the Spotler edit still goes in."""
    contact = sandbox.contacts()[1]
    cid = str(contact["ContactId"])
    ordering = Ordering(redis_client)
    ordering.settle([ContactWrite(contact_id=cid, fields=[FieldWrite("lastName", "Oud", 1_000, 0)])])
    won = change_for(contact, {"lastName": "Uit-Spotler"}, stamp=1_000_000, base=1_000,
                     seen={"lastName": contact["LastName"]})
    edit = {"entity": "organisation", "id": contact["OrganisationId"], "fields": {"Rs": "Zwolle"}}
    sandbox.http.post("/_sandbox/edit", json=edit).raise_for_status()

    def row(contact_id: str) -> dict[str, Any] | None:
        return sandbox.client.rows_by_ids("Spotler_Contacts", key="ContactId", ids=[contact_id]).get(contact_id)

    outcome = write_change(won, client=sandbox.client, mapping=MAPPING, ordering=ordering,
                           redis_client=redis_client, recent=row)
    assert sandbox.contact(cid)["LastName"] == "Uit-Spotler"
    assert (outcome.written, outcome.superseded) == (["KnPerson"], [])
    # Without what it was decided against, the moved stamp makes AFAS's unchanged value look like an edit.
    state = AgreedStore(redis_client).state(cid)
    assert state is not None
    current = state.stamp("lastName")
    ordering.settle([ContactWrite(contact_id=cid, fields=[FieldWrite("lastName", "Ouder", current + 1, current)])])
    blind = change_for(contact, {"lastName": "Weer-Spotler"}, stamp=current + 2, base=current + 1)
    sandbox.http.post("/_sandbox/edit", json={**edit, "fields": {"Rs": "Kampen"}}).raise_for_status()
    again = write_change(blind, client=sandbox.client, mapping=MAPPING, ordering=ordering,
                         redis_client=redis_client, recent=row)
    assert again.superseded == ["lastName"]


class Killed(BaseException):
    """The worker's process dying right after a call returned (``kill -9``: nothing after it runs)."""


class DiesAfterPut:
    """The real client, whose process dies once its PUT has reached AFAS."""

    def __init__(self, client: AfasClient) -> None:
        self.client = client

    def update(self, connector: str, fields: dict[str, Any]) -> Any:
        self.client.update(connector, fields)
        raise Killed


def _row_reader(sandbox: Sandbox) -> Callable[[str], dict[str, Any] | None]:
    def row(contact_id: str) -> dict[str, Any] | None:
        return sandbox.client.rows_by_ids("Spotler_Contacts", key="ContactId", ids=[contact_id]).get(contact_id)

    return row


def _opted_out(sandbox: Sandbox, write: Write, redis_client: redis.Redis) -> tuple[dict[str, Any], int]:
    """A contact the link opted out (AFAS and the agreed state say no), and the field's agreed stamp."""
    contact = sandbox.contacts()[2]
    write(change_for(contact, {"permissions.1": False}))
    state = AgreedStore(redis_client).state(str(contact["ContactId"]))
    assert state is not None
    assert state.values["permissions.1"] is False
    return contact, state.stamp("permissions.1")


class DiedOptIn(msgspec.Struct):
    """An opt-in whose PUT reached AFAS and whose worker died before the commit; its lease ran out."""

    cid: str
    contact: dict[str, Any]
    change: AfasChange
    redeliver: Callable[[], AfasOutcome]


def _opt_in_that_died(sandbox: Sandbox, write: Write, redis_client: redis.Redis) -> DiedOptIn:
    contact, base = _opted_out(sandbox, write, redis_client)
    cid = str(contact["ContactId"])
    opt_in = change_for(contact, {"permissions.1": True}, stamp=base + 10, base=base)
    ordering, row = Ordering(redis_client), _row_reader(sandbox)
    with pytest.raises(Killed):
        write_change(opt_in, client=DiesAfterPut(sandbox.client), mapping=MAPPING,  # type: ignore[arg-type]
                     ordering=ordering, redis_client=redis_client, recent=row)
    assert sandbox.contact(cid)["Newsletter"] is True  # it landed; the agreed state still says no
    assert redis_client.hkeys(keys.doubt("afas", cid)) == [b"permissions.1"]
    redis_client.delete(keys.lease(cid))
    return DiedOptIn(cid, contact, opt_in, lambda: write_change(
        opt_in, client=sandbox.client, mapping=MAPPING, ordering=ordering, redis_client=redis_client, recent=row))


def _afas_edit_later(sandbox: Sandbox, entity: str, key: object, fields: dict[str, Any]) -> None:
    """An AFAS user's edit half a minute later (the sandbox's clock moved on)."""
    sandbox.http.post("/_sandbox/clock", json={"offset_s": 30}).raise_for_status()
    sandbox.http.post("/_sandbox/edit", json={"entity": entity, "id": key, "fields": fields}).raise_for_status()


def test_an_afas_opt_out_after_an_unconfirmed_opt_in_stands_and_goes_to_spotler(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    """The opt-in reached AFAS, its worker died before the commit; an AFAS user then opted the contact
    out, which puts back exactly the value the agreed state holds. The redelivered opt-in must not undo
    that opt-out: it stands in AFAS and is owed to Spotler."""
    died = _opt_in_that_died(sandbox, write, redis_client)
    _afas_edit_later(sandbox, "contact", died.cid, {NEWSLETTER: False})

    outcome = died.redeliver()

    assert sandbox.contact(died.cid)["Newsletter"] is False
    assert outcome.superseded == ["permissions.1"]
    assert outcome.written == []
    assert [(o.name, o.value) for o in outcome.owed] == [("permissions.1", False)]
    assert redis_client.exists(keys.doubt("afas", died.cid)) == 0


def test_without_the_doubt_mark_the_redelivered_opt_in_undoes_the_afas_opt_out(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    """The same sequence with the mark gone (as before marks): the opt-in goes in over the opt-out."""
    died = _opt_in_that_died(sandbox, write, redis_client)
    redis_client.delete(keys.doubt("afas", died.cid))
    _afas_edit_later(sandbox, "contact", died.cid, {NEWSLETTER: False})
    outcome = died.redeliver()
    assert outcome.written == ["KnContact"]
    assert sandbox.contact(died.cid)["Newsletter"] is True


def test_a_redelivered_opt_in_that_nobody_undid_is_written_and_clears_its_mark(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    died = _opt_in_that_died(sandbox, write, redis_client)
    _afas_edit_later(sandbox, "person", died.contact["PersonNo"], {"FiNm": "Elders"})
    outcome = died.redeliver()
    assert outcome.written == ["KnContact"]
    assert outcome.owed == []
    assert sandbox.contact(died.cid)["Newsletter"] is True
    assert redis_client.exists(keys.doubt("afas", died.cid)) == 0
    state = AgreedStore(redis_client).state(died.cid)
    assert state is not None
    assert state.values["permissions.1"] is True


def test_an_opt_in_put_that_afas_refused_leaves_no_doubt_one_without_an_answer_does(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    """AFAS answered with an error: the write did not happen. A 504 is no answer (and no row reader here)."""
    contact, base = _opted_out(sandbox, write, redis_client)
    cid = str(contact["ContactId"])
    optin = change_for(contact, {"permissions.1": True}, stamp=base + 10, base=base)
    marks = {}
    for status in (500, 504):
        sandbox.faults(error_rate=1.0, error_status=status)
        with pytest.raises(RetriableError):
            write_change(optin, client=sandbox.client, mapping=MAPPING, ordering=Ordering(redis_client),
                         redis_client=redis_client)
        marks[status] = redis_client.hkeys(keys.doubt("afas", cid))
    sandbox.faults()
    assert marks == {500: [], 504: [b"permissions.1"]}


def test_a_stale_mark_does_not_hold_back_a_later_opt_in(
    sandbox: Sandbox, write: Write, redis_client: redis.Redis
) -> None:
    """A mark whose field was committed since (another change won) is history, not a doubt."""
    died = _opt_in_that_died(sandbox, write, redis_client)
    base = died.change.bases["permissions.1"]
    # A newer AFAS opt-out was agreed on since (its commit moved the field's stamp).
    _afas_edit_later(sandbox, "contact", died.cid, {NEWSLETTER: False})
    ordering = Ordering(redis_client)
    ordering.settle([ContactWrite(contact_id=died.cid,
                                  fields=[FieldWrite("permissions.1", False, base + 20, base)])])
    state = AgreedStore(redis_client).state(died.cid)
    assert state is not None
    later = change_for(died.contact, {"permissions.1": True}, stamp=base + 30, base=state.stamp("permissions.1"))
    outcome = write_change(later, client=sandbox.client, mapping=MAPPING, ordering=ordering,
                           redis_client=redis_client, recent=_row_reader(sandbox))
    assert outcome.written == ["KnContact"]
    assert sandbox.contact(died.cid)["Newsletter"] is True
