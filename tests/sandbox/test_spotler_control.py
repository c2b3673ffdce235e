"""The Spotler sandbox's control API, fault injection and request accounting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from connector.sandbox.spotler.app import SpotlerApp, error_body, route_of
from connector.sandbox.spotler.testing import SignedClient


class Env(NamedTuple):
    app: SpotlerApp
    url: str
    api: SignedClient

    def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.url}/_sandbox/{path}", json=body)


@pytest.fixture
def env(running: tuple[SpotlerApp, str]) -> Iterator[Env]:
    app, url = running
    httpx.post(url + "/_sandbox/reset").raise_for_status()
    with SignedClient(url + "/integrationservice-1.1.0") as api:
        yield Env(app, url, api)


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/integrationservice-1.1.0/contact", "POST /contact"),
        ("POST", "/integrationservice/contact/", "POST /contact"),
        ("POST", "/integrationservice/contact/list", "POST /contact/list"),
        ("GET", "/integrationservice-1.1.0/contact/123", "GET /contact/{id}"),
        ("PUT", "/integrationservice/contact/a%20b", "PUT /contact/{id}"),
        ("GET", "/integrationservice/contact/updates/list", "GET /contact/updates/list"),
        ("GET", "/integrationservice/contact/bounces/list", "GET /contact/bounces/list"),
        ("GET", "/integrationservice/contact/properties/list", "GET /contact/properties/list"),
        ("GET", "/integrationservice/contact/search", "GET /contact/search"),
        ("PUT", "/integrationservice/contact/anonymize/9", "PUT /contact/anonymize/{id}"),
        ("GET", "/integrationservice/contact/9/mailings", "GET /contact/{id}/mailings"),
        ("GET", "/elsewhere", "GET /elsewhere"),
    ],
)
def test_route_of(method: str, path: str, route: str) -> None:
    assert route_of(method, path) == route


def test_error_body_is_spotler_dialect() -> None:
    body, headers = error_body(503, "maintenance")
    assert json.loads(body) == {"errorType": "BACKEND_EXCEPTION", "message": "maintenance"}
    assert headers == {}
    assert json.loads(error_body(429, "rate limited")[0])["errorType"] == "INVALID_STATE"


# --- faults -----------------------------------------------------------------------


def put_faults(env: Env, **faults: Any) -> None:
    response = env.control("PUT", "faults", faults)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in faults} == faults


def test_injected_5xx_and_the_control_api_stays_reachable(env: Env) -> None:
    put_faults(env, error_rate=1.0, error_status=502)
    response = env.api.get("contact/properties/list")
    assert response.status_code == 502
    assert response.json()["errorType"] == "BACKEND_EXCEPTION"
    assert env.control("GET", "contacts").status_code == 200


def test_rate_limit_answers_429_with_retry_after(env: Env) -> None:
    put_faults(env, rate_per_s=0, retry_after_s=7)
    response = env.api.get("contact/properties/list")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert set(response.json()) == {"errorType", "message"}


def test_rate_limit_lets_the_first_requests_of_a_second_through(env: Env) -> None:
    put_faults(env, rate_per_s=2)
    statuses: list[int] = []
    deadline = time.monotonic() + 30
    while 429 not in statuses and time.monotonic() < deadline:
        statuses.append(env.api.get("contact/properties/list").status_code)
    assert statuses[0] == 200
    assert 429 in statuses


def test_timeouts_hang_then_fail(env: Env) -> None:
    put_faults(env, timeout_rate=1.0, timeout_s=0.2)
    assert env.api.get("contact/properties/list").status_code == 500


def test_maintenance_is_503_with_retry_after(env: Env) -> None:
    put_faults(env, maintenance=True, maintenance_retry_after_s=30)
    response = env.api.get("contact/properties/list")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"


def test_latency_is_accepted_and_requests_still_succeed(env: Env) -> None:
    put_faults(env, latency_ms=20.0)
    assert env.api.get("contact/properties/list").status_code == 200


# --- request accounting -------------------------------------------------------------


def test_request_counts_collapse_ids_and_prefixes(env: Env) -> None:
    since = time.time() - 1
    body = {"update": True, "contact": {"externalId": "1"}}
    env.api.post("contact", body)
    env.api.get("contact/1")
    with SignedClient(env.url + "/integrationservice") as other:
        other.get("contact/2")
    stats = env.control("GET", "requests").json()
    assert stats["routes"] == {"POST /contact": 1, "GET /contact/{id}": 2}
    assert stats["statuses"] == {"204": 1, "200": 1, "404": 1}
    assert stats["max_in_flight"] >= 1
    log = httpx.get(f"{env.url}/_sandbox/requests/log", params={"since": since}).json()
    assert [(r["method"], r["route"], r["status"]) for r in log] == [
        ("POST", "POST /contact", 204), ("GET", "GET /contact/{id}", 200),
        ("GET", "GET /contact/{id}", 404)]
    assert env.control("DELETE", "requests").json()["total"] == 0
    assert httpx.get(f"{env.url}/_sandbox/requests/log").json() == []


# --- state, catalogue, clock, settings ---------------------------------------------


NEWSLETTER_ONLY = [
    {"name": "email", "description": "E-mail", "type": "email"},
    {"name": "permissions", "description": "Permissies", "type": "set",
     "entries": [{"bit": 1, "description": "Nieuwsbrief", "rank": 1}]},
    {"name": "birthday", "description": "Geboortedatum", "type": "birthdate"},
    {"name": "gender", "description": "Geslacht", "type": "gender"},
    {"name": "postalCode", "description": "Postcode", "type": "postcode"},
    {"name": "mobile", "description": "Mobiel", "type": "mobNr"},
    {"name": "visits", "description": "Bezoeken", "type": "int"},
]


def test_catalogue_replacement_drives_validation(env: Env) -> None:
    assert env.control("PUT", "properties", NEWSLETTER_ONLY).status_code == 200
    assert env.api.get("contact/properties/list").json() == NEWSLETTER_ONLY
    ok = {"email": "a@example.com", "birthday": "1980-05-17", "gender": "f",
          "postalCode": "1234 AB", "mobile": "+31612345678", "visits": "12",
          "permissions": [{"bit": 1, "enabled": True}]}
    results = env.api.post("contact/list", {"update": True, "contacts": [
        {"externalId": "ok", "properties": ok},
        {"externalId": "bit2", "properties": {"permissions": [{"bit": 2, "enabled": True}]}},
        {"externalId": "name", "properties": {"firstName": "Jan"}},
        {"externalId": "date", "properties": {"birthday": "17-05-1980"}},
        {"externalId": "gender", "properties": {"gender": "X"}},
        {"externalId": "postcode", "properties": {"postalCode": "B-1000"}},
        {"externalId": "int", "properties": {"visits": 1.5}},
    ]}).json()
    assert [r["code"] for r in results] == ["OK"] + ["PROPERTY_INVALID"] * 6
    contact = env.api.get("contact/ok").json()
    assert contact["properties"]["gender"] == "F"
    assert contact["properties"]["visits"] == 12
    assert contact["channels"] == [{"name": "EMAIL", "value": True}, {"name": "SMS", "value": True}]


def test_bad_catalogues_are_refused(env: Env) -> None:
    bad_type = [{"name": "x", "description": "X", "type": "boolean"}]
    unknown_field = [{"name": "x", "description": "X", "type": "string", "colour": "red"}]
    duplicate = [NEWSLETTER_ONLY[0], NEWSLETTER_ONLY[0]]
    for catalogue in (bad_type, unknown_field, duplicate):
        assert env.control("PUT", "properties", catalogue).status_code == 400


def test_reset_restores_a_fresh_sandbox(env: Env) -> None:
    env.control("POST", "contacts", {"contacts": [{"externalId": "1"}]})
    env.control("PUT", "properties", NEWSLETTER_ONLY)
    env.control("PUT", "settings", {"bare_array_feeds": True})
    env.control("PUT", "faults", {"latency_ms": 5.0})
    env.control("POST", "clock", {"offset_s": -86400})
    assert env.control("POST", "reset").status_code == 200
    assert env.control("GET", "contacts").json() == []
    assert len(env.control("GET", "properties").json()) == 9
    assert env.control("GET", "settings").json()["bare_array_feeds"] is False
    assert env.control("GET", "faults").json()["latency_ms"] == 0
    assert env.control("GET", "clock").json()["offset_s"] == 0
    assert env.control("GET", "requests").json()["total"] == 0


def test_reset_with_a_catalogue(env: Env) -> None:
    assert env.control("POST", "reset", {"catalogue": NEWSLETTER_ONLY}).status_code == 200
    names = [p["name"] for p in env.control("GET", "properties").json()]
    assert names[:2] == ["email", "permissions"]


def test_seed_and_inspect_contacts(env: Env) -> None:
    seeded = env.control("POST", "contacts", {"contacts": [
        {"externalId": "1", "properties": {"email": "a@example.com"}},
        {"externalId": "2", "properties": {"email": "nope"}},
    ]}).json()
    assert [r["code"] for r in seeded] == ["OK", "PROPERTY_INVALID"]
    everyone = env.control("GET", "contacts").json()
    assert [(c["externalId"], c["active"], c["softBounces"]) for c in everyone] == [("1", True, 0)]
    assert env.control("GET", "contacts/1").json()["properties"]["email"] == "a@example.com"
    missing = env.control("GET", "contacts/2")
    assert missing.status_code == 404
    assert missing.json()["errorType"] == "CONTACT_NOT_FOUND"


def test_clock_control(env: Env) -> None:
    state = env.control("POST", "clock", {"now": "2024-10-27T02:30:00", "frozen": True}).json()
    assert state["now"] == "2024-10-27T00:30:00+00:00"  # the first 02:30 of the DST change: +02:00
    assert state["frozen"] is True
    env.control("POST", "clock", {"advance_s": 3600})
    assert env.control("GET", "clock").json()["now"] == "2024-10-27T01:30:00+00:00"
    env.api.post("contact", {"contact": {"externalId": "c"}})
    assert env.api.get("contact/c").json()["created"] == state["now_ms"] + 3_600_000
    assert env.control("POST", "clock", {"real": True}).json()["frozen"] is False
    assert env.control("POST", "clock", {}).status_code == 400
    assert env.control("POST", "clock", {"now": "soon"}).status_code == 400


def test_settings_are_typed(env: Env) -> None:
    assert env.control("PUT", "settings", {"bare_array_feedz": True}).status_code == 400
    updated = env.control("PUT", "settings", {"max_bulk": 10}).json()
    assert updated["max_bulk"] == 10
    too_many = [{"externalId": str(i)} for i in range(11)]
    response = env.api.post("contact/list", {"contacts": too_many})
    assert response.json()["message"] == "Too many contacts provided (max is 10)"


def test_state_has_a_safe_repr(env: Env) -> None:
    text = repr(env.app.state) + repr(env.app.state.verifier.credentials)
    assert "sandbox-consumer-secret" not in text
