"""Writing batches to the Spotler sandbox: newer wins per field, and a late write never overwrites a newer edit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
import redis

from connector.clients.spotler import SpotlerClient
from connector.errors import RetriableError
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.events import ContactChange, Value
from connector.schemas.mapping import load_mapping
from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.doubt import DOUBT_MARGIN_MS
from connector.state.ordering import Ordering
from connector.writers.spotler import BatchOutcome, current_contact, recent_changes, write_batch

MAPPING = load_mapping(None)
START = 1_700_000_000_000


class Spotler(msgspec.Struct):
    client: SpotlerClient
    control: httpx.Client

    def contact(self, cid: str) -> dict[str, Any]:
        data: dict[str, Any] = self.control.get(f"/contacts/{cid}").json()
        return data

    def writes(self) -> int:
        return int(self.control.get("/requests").json()["routes"].get("POST /contact/list", 0))


@pytest.fixture
def spotler() -> Iterator[Spotler]:
    with BackgroundServer(create_app()) as server, \
            SpotlerClient(f"{server.url}/integrationservice-1.1.0", DEFAULT_KEY, DEFAULT_SECRET) as client, \
            httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as control:
        yield Spotler(client, control)


def change(cid: str, changes: dict[str, Value], stamp: int, base: int, *, new: bool = False) -> ContactChange:
    return ContactChange(contact_id=cid, changes=changes, person_id="P1", organisation_id="O1", new=new,
                         stamps=dict.fromkeys(changes, stamp), bases=dict.fromkeys(changes, base))


def write(spotler: Spotler, client: redis.Redis, changes: list[ContactChange], **options: Any) -> BatchOutcome:
    return write_batch(changes, client=spotler.client, ordering=Ordering(client), before_request=lambda: None,
                       **options)


def test_a_batch_writes_each_contact_once_and_a_redelivery_writes_nothing(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    batch = [change(str(n), {"email": f"c{n}@example.org", "lastName": f"Naam{n}"}, START, 0, new=True)
             for n in range(1, 4)]
    first = write(spotler, redis_client, batch)
    again = write(spotler, redis_client, batch)
    assert (len(first.written), first.requests) == (3, 1)
    assert (again.written, again.requests, len(again.superseded), again.superseded_fields) == ([], 0, 3, 6)
    assert spotler.writes() == 1
    assert AgreedStore(redis_client).get("2") == {"email": "c2@example.org", "lastName": "Naam2"}


def test_an_older_change_retried_after_a_newer_one_is_not_written(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    write(spotler, redis_client, [change("7", {"email": "z@example.org", "lastName": "Eerst"}, START, 0, new=True)])
    base = AgreedStore(redis_client).state("7")
    assert base is not None
    older = change("7", {"lastName": "Oud"}, START + 1000, base.stamp("lastName"))
    newer = change("7", {"lastName": "Nieuw"}, START + 2000, base.stamp("lastName"))
    write(spotler, redis_client, [newer])
    late = write(spotler, redis_client, [older])
    assert (late.requests, late.superseded_fields) == (0, 1)
    assert spotler.contact("7")["properties"]["lastName"] == "Nieuw"


def test_a_late_write_leaves_out_fields_a_recipient_changed_in_spotler_since(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    write(spotler, redis_client, [change("9", {"email": "p@example.org", "firstName": "Piet", "lastName": "Berg"},
                                         START, 0, new=True)])
    state = AgreedStore(redis_client).state("9")
    assert state is not None
    # AFAS changed both names a while ago; the write waited (a retry). Meanwhile, after the AFAS
    # edit and after our last write, the recipient changed the first name in Spotler.
    made = int(time.time() * 1000) - 5_000
    time.sleep(1.1)  # the recipient's edit must come later than our own last write (see ECHO margin)
    spotler.control.post("/edit", json={"externalId": "9", "properties": {"firstName": "Pieter"}}).raise_for_status()
    late = change("9", {"firstName": "Peter", "lastName": "Bergh"}, made, state.stamp("firstName"))
    recent = recent_changes(spotler.client, MAPPING, lambda: datetime.now(UTC) - timedelta(minutes=1))
    outcome = write(spotler, redis_client, [late], recent=recent)

    after = spotler.contact("9")["properties"]
    assert (after["firstName"], after["lastName"]) == ("Pieter", "Bergh")  # the recipient's edit stands
    assert (len(outcome.written), outcome.superseded_fields) == (1, 1)
    assert AgreedStore(redis_client).get("9") == {"email": "p@example.org", "firstName": "Piet", "lastName": "Bergh"}


def test_a_recipients_opt_out_is_kept_when_our_own_later_write_moved_lastchanged(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    write(spotler, redis_client, [change("11", {"email": "q@example.org", "permissions.2": True},
                                         START, 0, new=True)])
    state = AgreedStore(redis_client).state("11")
    assert state is not None
    # AFAS opted the contact in (again) a while ago: that write waited. Meanwhile the recipient
    # unsubscribed, and then one of our own writes (another field) touched the contact, so
    # Spotler's lastChanged is now that write's, not the unsubscribe's.
    made = int(time.time() * 1000) - 5_000
    optin = change("11", {"permissions.2": True}, made, state.stamp("permissions.2"))
    time.sleep(1.1)
    spotler.control.post("/unsubscribe", json={"externalId": "11", "bit": 2}).raise_for_status()
    time.sleep(0.05)
    email = change("11", {"email": "r@example.org"}, int(time.time() * 1000), state.stamp("email"))
    assert len(write(spotler, redis_client, [email]).written) == 1

    recent = recent_changes(spotler.client, MAPPING, lambda: datetime.now(UTC) - timedelta(minutes=1))
    outcome = write(spotler, redis_client, [optin], recent=recent)

    bits = {p["bit"]: p["enabled"] for p in spotler.contact("11")["properties"]["permissions"]}
    assert bits[2] is False  # the unsubscribe stands
    assert (outcome.written, outcome.superseded_fields) == ([], 1)
    assert (AgreedStore(redis_client).get("11") or {}).get("permissions.2") is True  # for the producer to settle


def test_a_late_write_whose_value_spotler_already_holds_is_written_again(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    """A write that reached Spotler but whose commit did not (Redis went away): the retry is no recipient edit."""
    write(spotler, redis_client, [change("12", {"email": "s@example.org", "lastName": "Oud"}, START, 0, new=True)])
    state = AgreedStore(redis_client).state("12")
    assert state is not None
    made = int(time.time() * 1000) - 5_000
    time.sleep(1.1)
    spotler.control.post("/edit", json={"externalId": "12", "properties": {"lastName": "Nieuw"}}).raise_for_status()
    late = change("12", {"lastName": "Nieuw"}, made, state.stamp("lastName"))
    recent = recent_changes(spotler.client, MAPPING, lambda: datetime.now(UTC) - timedelta(minutes=1))
    outcome = write(spotler, redis_client, [late], recent=recent)
    assert (len(outcome.written), outcome.superseded_fields) == (1, 0)
    assert (AgreedStore(redis_client).get("12") or {}).get("lastName") == "Nieuw"


def test_a_late_conflict_win_is_written_when_spotler_still_holds_the_value_it_beat(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    """An AFAS edit won a conflict against Spotler's last name; while it waited the recipient edited another
    field (lastChanged moved), not the last name: the AFAS edit still goes in."""
    write(spotler, redis_client, [change("13", {"email": "t@example.org", "lastName": "Oud"}, START, 0, new=True)])
    spotler.control.post("/edit", json={"externalId": "13", "properties": {"lastName": "Spotler"}}).raise_for_status()
    state = AgreedStore(redis_client).state("13")
    assert state is not None
    made = int(time.time() * 1000) - 5_000
    won = msgspec.structs.replace(change("13", {"lastName": "Afas"}, made, state.stamp("lastName")),
                                  seen={"lastName": "Spotler"})
    time.sleep(1.1)
    spotler.control.post("/edit", json={"externalId": "13", "properties": {"firstName": "Els"}}).raise_for_status()
    recent = recent_changes(spotler.client, MAPPING, lambda: datetime.now(UTC) - timedelta(minutes=1))
    outcome = write(spotler, redis_client, [won], recent=recent)
    assert (len(outcome.written), outcome.superseded_fields) == (1, 0)
    assert spotler.contact("13")["properties"]["lastName"] == "Afas"


class Killed(BaseException):
    """The worker's process dying right after a call returned (``kill -9``: nothing after it runs)."""


class DiesAfterUpsert:
    """The real client, whose process dies once its upsert has reached Spotler."""

    def __init__(self, client: SpotlerClient) -> None:
        self.client = client

    def upsert_many(self, contacts: Any) -> Any:
        self.client.upsert_many(contacts)
        raise Killed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _checked(spotler: Spotler) -> dict[str, Any]:
    """What the worker passes for a batch it checks first: the feed and the direct read."""
    return {"recent": recent_changes(spotler.client, MAPPING, lambda: datetime.now(UTC) - timedelta(minutes=1)),
            "current": current_contact(spotler.client, MAPPING)}


def _bit(spotler: Spotler, cid: str, bit: int) -> bool:
    return {p["bit"]: p["enabled"] for p in spotler.contact(cid)["properties"]["permissions"]}[bit] is True


def _opt_in_that_died(spotler: Spotler, redis_client: redis.Redis, cid: str) -> ContactChange:
    """An AFAS opt-in whose upsert reached Spotler; its worker died before the commit, the lease ran out."""
    write(spotler, redis_client, [change(cid, {"email": f"d{cid}@example.org", "permissions.2": False},
                                         START, 0, new=True)])
    state = AgreedStore(redis_client).state(cid)
    assert state is not None
    optin = change(cid, {"permissions.2": True}, int(time.time() * 1000), state.stamp("permissions.2"))
    with pytest.raises(Killed):
        write_batch([optin], client=DiesAfterUpsert(spotler.client), ordering=Ordering(redis_client),  # type: ignore[arg-type]
                    **_checked(spotler))
    assert _bit(spotler, cid, 2)  # it landed; the agreed state still says no
    assert redis_client.hkeys(keys.doubt("spotler", cid)) == [b"permissions.2"]
    redis_client.delete(keys.lease(cid))
    time.sleep(DOUBT_MARGIN_MS / 1000 + 0.2)
    return optin


def test_an_unsubscribe_after_an_unconfirmed_opt_in_stands_and_goes_to_afas(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    """The recipient unsubscribed after our opt-in landed uncommitted: Spotler shows the agreed value again.
    The redelivered opt-in must not undo the unsubscribe: it stands, and is owed to AFAS."""
    optin = _opt_in_that_died(spotler, redis_client, "31")
    spotler.control.post("/unsubscribe", json={"externalId": "31", "bit": 2}).raise_for_status()

    outcome = write(spotler, redis_client, [optin], **_checked(spotler))

    assert not _bit(spotler, "31", 2)
    assert (outcome.written, outcome.requests) == ([], 0)
    assert [[(o.name, o.value) for o in owed] for _, owed in outcome.owed] == [[("permissions.2", False)]]
    assert redis_client.exists(keys.doubt("spotler", "31")) == 0


def test_without_the_doubt_mark_the_redelivered_opt_in_undoes_the_unsubscribe(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    optin = _opt_in_that_died(spotler, redis_client, "32")
    redis_client.delete(keys.doubt("spotler", "32"))
    spotler.control.post("/unsubscribe", json={"externalId": "32", "bit": 2}).raise_for_status()
    outcome = write(spotler, redis_client, [optin], **_checked(spotler))
    assert len(outcome.written) == 1
    assert _bit(spotler, "32", 2)


def test_a_redelivered_opt_in_nobody_undid_is_written_and_its_mark_cleared(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    optin = _opt_in_that_died(spotler, redis_client, "33")
    spotler.control.post("/edit", json={"externalId": "33", "properties": {"firstName": "Anders"}}).raise_for_status()
    outcome = write(spotler, redis_client, [optin], **_checked(spotler))
    assert (len(outcome.written), outcome.owed) == (1, [])
    assert _bit(spotler, "33", 2)
    assert redis_client.exists(keys.doubt("spotler", "33")) == 0
    assert (AgreedStore(redis_client).get("33") or {}).get("permissions.2") is True


def test_an_upsert_spotler_refused_leaves_no_doubt_one_without_an_answer_does(
    spotler: Spotler, redis_client: redis.Redis
) -> None:
    """A 500 is Spotler's answer (nothing written); a 504 from the gateway is no answer: the mark stays."""
    write(spotler, redis_client, [change("34", {"email": "e34@example.org", "permissions.2": False},
                                         START, 0, new=True)])
    state = AgreedStore(redis_client).state("34")
    assert state is not None
    optin = change("34", {"permissions.2": True}, int(time.time() * 1000), state.stamp("permissions.2"))
    marks = {}
    for status in (500, 504):
        spotler.control.put("/faults", json={"error_rate": 1.0, "error_status": status}).raise_for_status()
        with pytest.raises(RetriableError):
            write(spotler, redis_client, [optin], current=current_contact(spotler.client, MAPPING))
        marks[status] = redis_client.hkeys(keys.doubt("spotler", "34"))
    spotler.control.put("/faults", json={}).raise_for_status()
    assert marks == {500: [], 504: [b"permissions.2"]}
