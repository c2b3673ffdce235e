"""The Spotler client against the real Spotler sandbox over HTTP: signing, feeds, faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from connector.clients.spotler import SpotlerClient
from connector.errors import AuthError, RateLimited, RecordRejected, RetriableError
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.spotler import Bounce, Contact

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app()) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as http:
        http.post("/reset").raise_for_status()
        yield http


@pytest.fixture
def spotler(server: BackgroundServer, control: httpx.Client) -> Iterator[SpotlerClient]:
    base = f"{server.url}/integrationservice-1.1.0"
    with SpotlerClient(base, DEFAULT_KEY, DEFAULT_SECRET, timeout=10) as client:
        yield client


def window() -> tuple[datetime, datetime]:
    now = datetime.now(AMSTERDAM)  # an offset of +01:00/+02:00: a "+" in the signed query
    return now - timedelta(hours=1), now + timedelta(hours=1)


def person(external_id: str, **properties: Any) -> Contact:
    return Contact(external_id, {"email": f"p{external_id}@example.nl", **properties})


def test_upsert_get_and_permissions_merged_per_bit(spotler: SpotlerClient) -> None:
    first = person("1", firstName="Jan")
    first.set_permissions({1: True, 2: True})
    spotler.upsert(first)
    spotler.upsert(Contact("1", {"permissions": [{"bit": 2, "enabled": False}]}))
    got = spotler.get("1")
    assert got is not None
    assert got.properties["firstName"] == "Jan"
    assert got.permissions() == {1: True, 2: False}
    assert got.created is not None
    assert got.lastChanged is not None
    assert got.lastChanged > 10**11  # milliseconds


def test_unknown_contacts(spotler: SpotlerClient) -> None:
    assert spotler.get("404") is None
    with pytest.raises(RecordRejected) as info:
        spotler.update("404", Contact("404", {"firstName": "X"}))
    assert info.value.status == 404
    assert info.value.code == "CONTACT_NOT_FOUND"


def test_update_an_existing_contact(spotler: SpotlerClient) -> None:
    spotler.upsert(person("2", firstName="Piet"))
    spotler.update("2", Contact("", {"lastName": "Jansen"}))
    got = spotler.get("2")
    assert got is not None
    assert (got.properties["firstName"], got.properties["lastName"]) == ("Piet", "Jansen")


def test_bulk_upsert_reports_each_contact(spotler: SpotlerClient) -> None:
    results = spotler.upsert_many(
        [person("3"), Contact("4", {"email": "not-an-address"}), person("5")]
    )
    assert [(r.externalId, r.code) for r in results] == [
        ("3", "OK"),
        ("4", "PROPERTY_INVALID"),
        ("5", "OK"),
    ]
    assert spotler.get("4") is None


def test_an_invalid_value_rejects_the_record(spotler: SpotlerClient) -> None:
    with pytest.raises(RecordRejected) as info:
        spotler.upsert(Contact("6", {"email": "nope"}))
    assert info.value.status == 400
    assert info.value.code == "INVALID_PROPERTY"
    assert info.value.key == "6"


@pytest.mark.parametrize("bare", [False, True], ids=["paged-object", "bare-array"])
def test_updates_feed_pages_through_everything(
    spotler: SpotlerClient, control: httpx.Client, bare: bool
) -> None:
    control.put("/settings", json={"bare_array_feeds": bare}).raise_for_status()
    for batch in ([person(str(i)) for i in range(10, 15)], [person(str(i)) for i in range(15, 17)]):
        assert all(r.ok for r in spotler.upsert_many(batch))
    control.post("/unsubscribe", json={"externalId": "12", "bit": 1}).raise_for_status()
    start, end = window()
    changed = [c for c in spotler.iter_updates(start, end, page_size=2) if isinstance(c, Contact)]
    assert sorted(c.externalId for c in changed) == [str(i) for i in range(10, 17)]
    assert {c.externalId: c.permissions().get(1) for c in changed}["12"] is False
    control.delete("/requests").raise_for_status()
    assert len(list(spotler.iter_updates(start, end, page_size=8))) == 7
    stats = control.get("/requests").json()
    assert stats["routes"]["GET /contact/updates/list"] == 1  # fewer items than a page


def test_an_empty_window_is_empty(spotler: SpotlerClient) -> None:
    spotler.upsert(person("20"))
    past = datetime(2001, 1, 1, tzinfo=UTC)
    assert list(spotler.iter_updates(past, past + timedelta(days=1))) == []


def test_bounces_feed(spotler: SpotlerClient, control: httpx.Client) -> None:
    spotler.upsert_many([person("30"), person("31")])
    control.post("/bounce", json={"externalId": "30", "type": "HARDBOUNCE"}).raise_for_status()
    control.post("/bounce", json={"externalId": "31", "type": "SOFTBOUNCE"}).raise_for_status()
    bounces = [b for b in spotler.iter_bounces(*window(), page_size=1) if isinstance(b, Bounce)]
    assert sorted((b.contact.externalId, b.hard) for b in bounces) == [("30", True), ("31", False)]
    assert all(b.date > 10**11 for b in bounces)


def test_properties_search_and_anonymize(spotler: SpotlerClient) -> None:
    catalogue = {p.name: p for p in spotler.properties()}
    assert catalogue["email"].type == "email"
    assert catalogue["permissions"].entries is not None
    spotler.upsert(Contact("40", {"email": "a+b@example.nl", "firstName": "Ann"}))
    spotler.upsert(person("41"))
    found = spotler.search("email=a+b@example.nl")
    assert [c.externalId for c in found] == ["40"]
    spotler.anonymize("40")
    got = spotler.get("40")
    assert got is not None
    assert "firstName" not in got.properties


def test_a_wrong_secret_is_refused(server: BackgroundServer, control: httpx.Client) -> None:
    base = f"{server.url}/integrationservice"
    with SpotlerClient(base, DEFAULT_KEY, "wrong", timeout=10) as bad, pytest.raises(AuthError):
        bad.properties()


def test_injected_faults_become_retriable_errors(
    spotler: SpotlerClient, control: httpx.Client
) -> None:
    control.put("/faults", json={"rate_limit_rate": 1.0, "retry_after_s": 7}).raise_for_status()
    with pytest.raises(RateLimited) as limited:
        spotler.properties()
    assert limited.value.retry_after == 7
    control.put("/faults", json={"error_rate": 1.0, "error_status": 502}).raise_for_status()
    with pytest.raises(RetriableError) as failed:
        spotler.upsert(person("50"))
    assert failed.value.status == 502
    control.put("/faults", json={"maintenance": True}).raise_for_status()
    with pytest.raises(RetriableError) as down:
        spotler.get("50")
    assert down.value.status == 503


def test_a_hanging_call_times_out_as_retriable(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.put("/faults", json={"timeout_rate": 1.0, "timeout_s": 2}).raise_for_status()
    base = f"{server.url}/integrationservice-1.1.0"
    impatient = SpotlerClient(base, DEFAULT_KEY, DEFAULT_SECRET, timeout=0.3)
    with impatient, pytest.raises(RetriableError, match="timed out"):
        impatient.properties()
