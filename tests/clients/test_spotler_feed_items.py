"""One malformed feed item becomes a FeedProblem in its place; the rest of the page goes on.

The pages come from the real Spotler sandbox over HTTP; a transport in front of
the client's real one spoils chosen items of the sandbox's answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from connector.clients.spotler import SpotlerClient
from connector.errors import FatalError
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.spotler import Bounce, Contact, FeedProblem

T0 = datetime.fromisoformat("2024-03-01T12:00:00+01:00")
START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
Spoil = Callable[[list[dict[str, Any]]], None]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app()) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as http:
        http.post("/reset").raise_for_status()
        http.post("/clock", json={"now": T0.isoformat(), "frozen": True}).raise_for_status()
        yield http


class Spoiling(httpx.BaseTransport):
    """The client's real transport; ``spoil`` edits the items of every feed page it passes on."""

    def __init__(self, spoil: Spoil | None = None, body: bytes | None = None) -> None:
        self._real = httpx.HTTPTransport()
        self._spoil = spoil
        self._body = body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._real.handle_request(request)
        if not request.url.path.endswith(("/contact/updates/list", "/contact/bounces/list")):
            return response
        page = json.loads(response.read())
        if self._spoil is not None:
            self._spoil(page["contacts"] if "contacts" in page else page["bounces"])
        content = self._body if self._body is not None else json.dumps(page).encode()
        return httpx.Response(response.status_code, content=content, headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self._real.close()


def client(server: BackgroundServer, transport: Spoiling) -> SpotlerClient:
    base = f"{server.url}/integrationservice-1.1.0"
    return SpotlerClient(base, DEFAULT_KEY, DEFAULT_SECRET, timeout=10, transport=transport)


def seed(control: httpx.Client, count: int) -> list[str]:
    ids = [f"p{n}" for n in range(count)]
    contacts = [
        {
            "externalId": i,
            "properties": {"email": f"{i}@example.nl", "permissions": [{"bit": 1, "enabled": True}]},
        }
        for i in ids
    ]
    control.post("/contacts", json={"contacts": contacts}).raise_for_status()
    return ids


class Found(dict[str, dict[str, Any]]):
    """A page's items by externalId; an item not on this page is a throwaway."""

    def __missing__(self, key: str) -> dict[str, Any]:
        return {"contact": {"properties": {"permissions": [{}, {}]}}, "properties": {"permissions": [{}, {}]}}


def by_id(items: list[dict[str, Any]], contact: Callable[[dict[str, Any]], dict[str, Any]]) -> Found:
    return Found({contact(item)["externalId"]: item for item in items})


def spoil_contacts(items: list[dict[str, Any]]) -> None:
    found = by_id(items, lambda item: item)
    found["p1"]["externalId"] = None
    found["p2"]["lastChanged"] = "2024-03-01T12:00:00"
    found["p3"]["properties"]["permissions"][0]["enabled"] = "false"
    found["p4"]["properties"]["permissions"][1]["enabled"] = 0
    found["p5"]["properties"]["permissions"] = [{"bit": "1", "enabled": True}]
    found["p6"]["externalId"] = ""


def test_each_malformed_contact_is_a_problem_in_its_place(
    server: BackgroundServer, control: httpx.Client
) -> None:
    ids = seed(control, 9)
    with client(server, Spoiling(spoil_contacts)) as spotler:
        got = list(spotler.iter_updates(START, END, page_size=50))
    assert len(got) == 9
    problems = [p for p in got if isinstance(p, FeedProblem)]
    assert [(p.feed, p.external_id, p.field) for p in problems] == [
        ("updates", None, "externalId"),
        ("updates", "p2", "lastChanged"),
        ("updates", "p3", "permissions.1"),
        ("updates", "p4", "permissions.2"),
        ("updates", "p5", "permissions"),
        ("updates", None, "externalId"),
    ]
    assert "boolean" in problems[2].reason
    assert "string" in problems[2].reason
    assert "number" in problems[3].reason
    assert "integer" in problems[4].reason
    for problem in problems:
        assert "false" not in problem.reason
        assert "2024" not in problem.reason
        assert "@" not in problem.reason
    contacts = [c for c in got if isinstance(c, Contact)]
    assert [c.externalId for c in contacts] == [ids[0], *ids[7:]]
    assert all(c.permissions() == {1: True, 2: False} for c in contacts)


def spoil_bounces(items: list[dict[str, Any]]) -> None:
    found = by_id(items, lambda item: item["contact"])
    found["p1"]["contact"]["externalId"] = None
    found["p2"]["date"] = "yesterday"
    found["p3"]["contact"]["properties"]["permissions"][0]["enabled"] = "false"
    del found["p4"]["contact"]
    found["p5"]["type"] = None


def test_each_malformed_bounce_is_a_problem_in_its_place(
    server: BackgroundServer, control: httpx.Client
) -> None:
    ids = seed(control, 8)
    for external_id in ids:
        control.post("/bounce", json={"externalId": external_id, "type": "HARDBOUNCE"}).raise_for_status()
    with client(server, Spoiling(spoil_bounces)) as spotler:
        got = list(spotler.iter_bounces(START, END, page_size=50))
    problems = [p for p in got if isinstance(p, FeedProblem)]
    assert [(p.feed, p.external_id, p.field) for p in problems] == [
        ("bounces", None, "contact.externalId"),
        ("bounces", "p2", "date"),
        ("bounces", "p3", "contact.permissions.1"),
        ("bounces", None, "contact"),
        ("bounces", "p5", "type"),
    ]
    assert all("yesterday" not in p.reason and "@" not in p.reason for p in problems)
    bounces = [b for b in got if isinstance(b, Bounce)]
    assert [b.contact.externalId for b in bounces] == [ids[0], *ids[6:]]


def test_a_problem_on_a_shared_boundary_comes_once(server: BackgroundServer, control: httpx.Client) -> None:
    ids = seed(control, 30)  # one second, page 10: split down to the second and read by offset
    with client(server, Spoiling(spoil_contacts)) as spotler:
        got = list(spotler.iter_updates(START, END, page_size=10))
    assert len([p for p in got if isinstance(p, FeedProblem)]) == 6
    assert sorted(c.externalId for c in got if isinstance(c, Contact)) == sorted([ids[0], *ids[7:]])


@pytest.mark.parametrize("body", [b"<html>busy</html>", b'"contacts"', b'{"contacts": 3}', b"[1, 2"])
def test_a_page_that_is_neither_shape_stays_fatal(
    server: BackgroundServer, control: httpx.Client, body: bytes
) -> None:
    seed(control, 2)
    with client(server, Spoiling(body=body)) as spotler, pytest.raises(FatalError, match="unexpected answer"):
        list(spotler.iter_updates(START, END))


def test_the_feed_module_exports_exactly_its_public_names() -> None:
    from test_clients_public_names import defined_public_names

    import connector.clients.spotler_feed as module

    assert sorted(module.__all__) == sorted(defined_public_names(module))
