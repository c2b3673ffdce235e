"""The change and bounce feeds: windows, time zones, paging, order, injected events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import httpx
import pytest

from connector.sandbox.spotler.app import SpotlerApp
from connector.sandbox.spotler.clock import SandboxClock
from connector.sandbox.spotler.store import Store
from connector.sandbox.spotler.testing import SignedClient
from connector.sandbox.spotler.wire import ContactIn

T0 = "2024-03-01T12:00:00+01:00"
T0_MS = int(datetime.fromisoformat(T0).timestamp() * 1000)
EVER = {"fromDate": "2000-01-01T00:00:00+00:00", "toDate": "2999-01-01T00:00:00+00:00"}


class Env(NamedTuple):
    app: SpotlerApp
    url: str
    api: SignedClient

    def control(self, path: str, body: Any = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox/{path}", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def clock(self, **body: Any) -> None:
        self.control("clock", body)

    def upsert(self, external_id: str, **properties: Any) -> None:
        body = {"update": True, "contact": {"externalId": external_id, "properties": properties}}
        assert self.api.post("contact", body).status_code == 204

    def updates(self, **params: Any) -> httpx.Response:
        return self.api.get("contact/updates/list", params={**EVER, **params})

    def ids(self, **params: Any) -> list[str]:
        response = self.updates(**params)
        assert response.status_code == 200, response.text
        return [c["externalId"] for c in response.json()["contacts"]]


@pytest.fixture
def env(running: tuple[SpotlerApp, str]) -> Iterator[Env]:
    app, url = running
    httpx.post(url + "/_sandbox/reset").raise_for_status()
    with SignedClient(url + "/integrationservice-1.1.0") as api:
        yield Env(app, url, api)


# --- windows and time zones -------------------------------------------------------


def test_window_is_inclusive_at_both_ends_to_the_millisecond(env: Env) -> None:
    env.clock(now=T0, frozen=True)
    env.upsert("a")
    assert env.app.state.store.get("a").lastChanged == T0_MS  # type: ignore[union-attr]
    assert env.ids(fromDate=T0, toDate=T0) == ["a"]
    just_after = "2024-03-01T12:00:00.001+01:00"
    just_before = "2024-03-01T11:59:59.999+01:00"
    assert env.ids(fromDate=just_after, toDate="2024-03-01T13:00:00+01:00") == []
    assert env.ids(fromDate="2024-03-01T11:00:00+01:00", toDate=just_before) == []


@pytest.mark.parametrize(
    ("instant", "local"),
    [
        ("2024-07-01T10:00:00Z", "2024-07-01T12:00:00"),  # summer: +02:00
        ("2024-01-15T10:00:00Z", "2024-01-15T11:00:00"),  # winter: +01:00
    ],
)
def test_dates_without_offset_are_amsterdam_local_time(env: Env, instant: str, local: str) -> None:
    env.clock(now=instant, frozen=True)
    env.upsert("a")
    assert env.ids(fromDate=local, toDate=local) == ["a"]
    assert env.ids(fromDate=instant, toDate=instant) == ["a"]
    naive_utc = instant.removesuffix("Z")  # read as local time: an hour or two early
    assert env.ids(fromDate=naive_utc, toDate=naive_utc) == []


def test_date_only_and_milliseconds_with_offset_are_accepted(env: Env) -> None:
    env.clock(now=T0, frozen=True)
    env.upsert("a")
    assert env.ids(fromDate="2024-03-01", toDate="2024-03-01T12:00:00.000+01:00") == ["a"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fromDate": ""}, "Invalid fromDate or no fromDate given"),
        ({"fromDate": "yesterday"}, "Invalid fromDate or no fromDate given"),
        ({"toDate": "2024-13-01T00:00:00"}, "Invalid toDate or no toDate given"),
        ({"pageSize": 10_001}, "Invalid pageSize (max is 10000)"),
        ({"pageSize": 0}, "Invalid pageSize (max is 10000)"),
        ({"after": -1}, "Invalid after"),
        ({"fromDate": "2024-02-01", "toDate": "2024-01-01"}, "fromDate is after toDate"),
    ],
)
def test_bad_parameters_are_400(env: Env, params: dict[str, Any], message: str) -> None:
    response = env.updates(**params)
    assert response.status_code == 400
    assert response.json() == {"errorType": "INVALID_PARAMS", "message": message}


def test_missing_dates_are_400_on_both_feeds(env: Env) -> None:
    for feed in ("contact/updates/list", "contact/bounces/list"):
        response = env.api.get(feed, params={"toDate": EVER["toDate"]})
        assert response.json()["message"] == "Invalid fromDate or no fromDate given"
        response = env.api.get(feed, params={"fromDate": EVER["fromDate"]})
        assert response.json()["message"] == "Invalid toDate or no toDate given"


def test_an_unencoded_plus_arrives_as_a_space_and_is_refused(env: Env) -> None:
    raw = (
        "contact/updates/list?fromDate=2024-01-01T00:00:00%2B01:00&toDate=2024-01-02T00:00:00+01:00"
    )
    response = env.api.get(raw)
    assert response.status_code == 400  # signed fine; the date is invalid
    assert response.json()["message"] == "Invalid toDate or no toDate given"
    assert env.api.get(raw.replace("+", "%2B")).status_code == 200


# --- paging and order -------------------------------------------------------------


def test_pages_follow_next_and_cover_the_window_once_in_order(env: Env) -> None:
    env.clock(now=T0)
    for i in range(25):
        env.upsert(f"c{i:02d}")
        env.clock(advance_s=1)
    seen: list[str] = []
    afters: list[int] = []
    response = env.updates(pageSize=10)
    while True:
        body = response.json()
        seen += [c["externalId"] for c in body["contacts"]]
        afters.append(body["paging"]["after"])
        if "next" not in body["paging"]:
            break
        response = env.api.get(body["paging"]["next"])
    assert seen == [f"c{i:02d}" for i in range(25)]
    assert afters == [10, 20, 25]


def test_equal_last_changed_is_ordered_by_external_id(env: Env) -> None:
    env.clock(now=T0, frozen=True)
    for external_id in ("b", "c", "a"):
        env.upsert(external_id)
    assert env.ids() == ["a", "b", "c"]
    assert env.ids(after=1, pageSize=1) == ["b"]
    assert env.ids(after=3) == []


def test_default_page_size_is_1000(env: Env) -> None:
    contacts = [{"externalId": f"s{i:04d}"} for i in range(1001)]
    env.control("contacts", {"contacts": contacts})
    body = env.updates().json()
    assert len(body["contacts"]) == 1000
    assert body["paging"]["after"] == 1000
    assert "after=1000" in body["paging"]["next"]
    assert env.ids(after=1000) == ["s1000"]


def test_a_changed_contact_moves_to_the_end_of_the_feed(env: Env) -> None:
    env.clock(now=T0)
    env.upsert("a")
    env.clock(advance_s=1)
    env.upsert("b")
    env.clock(advance_s=1)
    env.upsert("a", city="Ede")
    assert env.ids() == ["b", "a"]


def test_feeds_by_id_switch_orders_both_feeds_by_external_id(env: Env) -> None:
    env.clock(now=T0)
    for external_id in ("c", "a", "b"):
        env.upsert(external_id)
        env.control("bounce", {"externalId": external_id, "type": "SOFTBOUNCE"})
        env.clock(advance_s=1)
    assert env.ids() == ["c", "a", "b"]
    assert httpx.put(f"{env.url}/_sandbox/settings", json={"feeds_by_id": True}).is_success
    assert env.ids() == ["a", "b", "c"]
    assert env.ids(after=1, pageSize=1) == ["b"]
    assert env.ids(fromDate="2024-03-01T12:00:01+01:00") == ["a", "b"]
    bounces = env.api.get("contact/bounces/list", params={**EVER, "after": 1}).json()["bounces"]
    assert [b["contact"]["externalId"] for b in bounces] == ["b", "c"]


def test_bare_array_switch(env: Env) -> None:
    env.upsert("a")
    env.control("bounce", {"externalId": "a", "type": "SOFTBOUNCE"})
    assert httpx.put(f"{env.url}/_sandbox/settings", json={"bare_array_feeds": True}).is_success
    assert [c["externalId"] for c in env.updates().json()] == ["a"]
    bounces = env.api.get("contact/bounces/list", params=EVER).json()
    assert [b["contact"]["externalId"] for b in bounces] == ["a"]


# --- injected events --------------------------------------------------------------


def test_unsubscribe_of_one_bit_appears_in_the_feed(env: Env) -> None:
    env.clock(now=T0)
    env.upsert("a", email="a@example.com", permissions=[{"bit": 1, "enabled": True},
                                                        {"bit": 2, "enabled": True}])
    env.clock(advance_s=60)
    env.control("unsubscribe", {"externalId": "a", "bit": 1})
    (contact,) = env.updates(fromDate="2024-03-01T12:00:30+01:00").json()["contacts"]
    permissions = contact["properties"]["permissions"]
    assert {p["bit"]: p["enabled"] for p in permissions} == {1: False, 2: True}
    assert contact["channels"] == [{"name": "EMAIL", "value": True}]


def test_every_injected_event_gives_a_new_version(env: Env) -> None:
    env.clock(now=T0, frozen=True)
    env.upsert("a", email="a@example.com")
    store = env.app.state.store

    def version() -> int:
        contact = store.get("a")
        assert contact is not None
        return contact.lastChanged

    versions = [version()]
    for path, body in [
        ("unsubscribe", {"externalId": "a", "bit": 2}),  # already off: still a recipient action
        ("edit", {"externalId": "a", "properties": {"firstName": "An"}}),
        ("edit", {"externalId": "a", "properties": {"firstName": "An"}}),
        ("bounce", {"externalId": "a", "type": "SOFTBOUNCE"}),
    ]:
        env.control(path, body)
        versions.append(version())
    assert versions == sorted(set(versions))  # strictly increasing though the clock stands still


def test_global_unsubscribe_makes_the_contact_inactive(env: Env) -> None:
    env.upsert("a", email="a@example.com")
    env.control("unsubscribe", {"externalId": "a", "global": True})
    (contact,) = env.updates().json()["contacts"]
    assert contact["channels"] == [{"name": "EMAIL", "value": False}]
    view = httpx.get(f"{env.url}/_sandbox/contacts/a").json()
    assert view["active"] is False


def test_edit_changes_properties_like_a_profile_form(env: Env) -> None:
    env.upsert("a", email="a@example.com", firstName="Jan")
    edit = {"firstName": "Johan", "permissions": [{"bit": 2, "enabled": True}]}
    env.control("edit", {"externalId": "a", "properties": edit})
    (contact,) = env.updates().json()["contacts"]
    assert contact["properties"]["firstName"] == "Johan"
    assert contact["properties"]["email"] == "a@example.com"
    bad = httpx.post(f"{env.url}/_sandbox/edit",
                     json={"externalId": "a", "properties": {"email": "geen"}})
    assert bad.status_code == 400
    assert bad.json()["errorType"] == "INVALID_PROPERTY"


def test_bounces_feed_hard_and_soft(env: Env) -> None:
    env.clock(now=T0)
    env.upsert("hard", email="h@example.com")
    env.upsert("soft", email="s@example.com")
    env.control("bounce", {"externalId": "hard", "type": "HARDBOUNCE", "encryptedActId": "act1"})
    env.clock(advance_s=10)
    env.control("bounce", {"externalId": "soft", "type": "SOFTBOUNCE"})
    body = env.api.get("contact/bounces/list", params=EVER).json()
    assert [(b["type"], b["contact"]["externalId"]) for b in body["bounces"]] == [
        ("HARDBOUNCE", "hard"), ("SOFTBOUNCE", "soft")]
    hard, soft = body["bounces"]
    assert hard["encryptedActId"] == "act1"
    assert hard["date"] == hard["contact"]["lastChanged"]
    assert hard["contact"]["channels"] == [{"name": "EMAIL", "value": False}]
    assert soft["contact"]["channels"] == [{"name": "EMAIL", "value": True}]
    later = {"fromDate": "2024-03-01T12:00:05+01:00", "toDate": "2999-01-01T00:00:00Z"}
    paged = env.api.get("contact/bounces/list", params={**later, "pageSize": 1}).json()
    assert [b["contact"]["externalId"] for b in paged["bounces"]] == ["soft"]
    assert "next" not in paged["paging"]
    assert [c["externalId"] for c in env.updates().json()["contacts"]] == ["hard", "soft"]


def test_soft_bounce_limit_setting(env: Env) -> None:
    assert httpx.put(f"{env.url}/_sandbox/settings",
                     json={"soft_bounces_to_inactive": 2}).is_success
    env.upsert("a", email="a@example.com")
    for expected in (True, False):
        env.control("bounce", {"externalId": "a", "type": "SOFTBOUNCE"})
        assert httpx.get(f"{env.url}/_sandbox/contacts/a").json()["active"] is expected


def test_events_on_unknown_contacts_or_bits_are_refused(env: Env) -> None:
    env.upsert("a")
    cases = [
        ("unsubscribe", {"externalId": "nope", "bit": 1}, 404),
        ("unsubscribe", {"externalId": "a", "bit": 64}, 400),
        ("unsubscribe", {"externalId": "a"}, 400),
        ("bounce", {"externalId": "a", "type": "BLOCKED"}, 400),
        ("edit", {"externalId": "nope", "properties": {}}, 404),
    ]
    for path, body, status in cases:
        assert httpx.post(f"{env.url}/_sandbox/{path}", json=body).status_code == status, body


# --- the index on its own -----------------------------------------------------------


def test_many_rewrites_keep_one_entry_per_contact_in_order() -> None:
    clock = SandboxClock()
    clock.set_now(datetime.fromisoformat(T0), frozen=True)
    store = Store(clock)
    for round_ in range(300):
        for i in range(10):
            store.insert(ContactIn(f"k{i}", {"city": f"c{round_}"}), update=True, purge=False)
        clock.advance(0.001 if round_ % 2 else -0.002)  # also out of order
    contacts, total = store.changed(0, 2**62, 0, 100)
    assert total == 10
    stamps = [(c.lastChanged, c.externalId) for c in contacts]
    assert stamps == sorted(stamps)
    assert all(c.properties["city"] == "c299" for c in contacts)
