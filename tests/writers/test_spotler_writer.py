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
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.events import ContactChange, Value
from connector.schemas.mapping import load_mapping
from connector.state.agreed import AgreedStore
from connector.state.ordering import Ordering
from connector.writers.spotler import BatchOutcome, recent_changes, write_batch

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
