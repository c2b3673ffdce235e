"""The windowed feed reader against the real Spotler sandbox while the feed changes under it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from connector.clients.oauth import OAuth1Signer
from connector.clients.spotler import SpotlerClient
from connector.errors import RetriableError
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.spotler import Bounce, Contact

T0 = datetime.fromisoformat("2024-03-01T12:00:00+01:00")
T0_MS = int(T0.timestamp()) * 1000
START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
FEEDS = ("/contact/updates/list", "/contact/bounces/list")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app()) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=30) as http:
        http.post("/reset").raise_for_status()
        yield http


class BetweenPages(httpx.BaseTransport):
    """The client's real HTTP transport; ``act`` runs after each feed response, before the next request."""

    def __init__(self, act: Callable[[httpx.Request], None]) -> None:
        self._real = httpx.HTTPTransport()
        self._act = act

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._real.handle_request(request)
        if request.url.path.endswith(FEEDS):
            response.read()
            self._act(request)
        return response

    def close(self) -> None:
        self._real.close()


def base(server: BackgroundServer) -> str:
    return f"{server.url}/integrationservice-1.1.0"


def reader(server: BackgroundServer, act: Callable[[httpx.Request], None] | None = None) -> SpotlerClient:
    transport = BetweenPages(act or (lambda _: None))
    return SpotlerClient(base(server), DEFAULT_KEY, DEFAULT_SECRET, timeout=30, transport=transport)


def clock(control: httpx.Client, **body: Any) -> None:
    control.post("/clock", json=body).raise_for_status()


def seed(control: httpx.Client, ids: list[str]) -> None:
    contacts = [{"externalId": i, "properties": {"email": f"{i}@example.nl"}} for i in ids]
    control.post("/contacts", json={"contacts": contacts}).raise_for_status()


def seed_spread(control: httpx.Client, count: int, per_second: int) -> list[str]:
    """``count`` contacts, ``per_second`` of them in each second from T0 on (frozen clock)."""
    clock(control, now=T0.isoformat(), frozen=True)
    ids = [f"c{n:04d}" for n in range(count)]
    for first in range(0, count, per_second):
        seed(control, ids[first : first + per_second])
        clock(control, advance_s=1)
    return ids


def feed_requests(control: httpx.Client, route: str = "GET /contact/updates/list") -> int:
    return int(control.get("/requests").json()["routes"].get(route, 0))


def editing(control: httpx.Client, ids: list[str]) -> Callable[[httpx.Request], None]:
    """After each of the first feed responses, an edit of the next of ``ids``."""
    pending = list(ids)

    def act(_: httpx.Request) -> None:
        if pending:
            edit = {"externalId": pending.pop(0), "properties": {"firstName": "Edited"}}
            control.post("/edit", json=edit).raise_for_status()

    return act


def plain_offset_ids(server: BackgroundServer, act: Callable[[httpx.Request], None], size: int) -> list[str]:
    """What the old reader did: ``after``/``pageSize`` until a short page."""
    signer = OAuth1Signer(DEFAULT_KEY, DEFAULT_SECRET)
    window = {"fromDate": START.isoformat(), "toDate": END.isoformat()}
    ids: list[str] = []
    with httpx.Client(transport=BetweenPages(act), timeout=30) as http:
        while True:
            params = {**window, "after": str(len(ids)), "pageSize": str(size)}
            request = http.build_request("GET", f"{base(server)}/contact/updates/list", params=params)
            request.headers["Authorization"] = signer.authorization("GET", str(request.url))
            page = http.send(request).json()["contacts"]
            ids += [c["externalId"] for c in page]
            if len(page) < size:
                return ids


@pytest.mark.parametrize(
    ("by_id", "edit_at"),
    [(False, T0 + timedelta(minutes=10)), (True, T0 + timedelta(hours=2))],
    ids=["stamp-order-edits-move-to-the-end", "id-order-edits-leave-the-window"],
)
def test_contacts_edited_between_two_pages_are_never_skipped(
    server: BackgroundServer, control: httpx.Client, by_id: bool, edit_at: datetime
) -> None:
    control.put("/settings", json={"feeds_by_id": by_id}).raise_for_status()
    ids = seed_spread(control, 300, per_second=10)
    clock(control, now=edit_at.isoformat(), frozen=True)
    edited, stays = ids[:5], set(ids[5:])  # the first page's contacts

    with reader(server, editing(control, edited)) as spotler:
        got = [c for c in spotler.iter_updates(START, END, page_size=50) if isinstance(c, Contact)]
    versions = Counter((c.externalId, c.lastChanged) for c in got)
    assert max(versions.values()) == 1
    per_id = Counter(c.externalId for c in got)
    assert {i for i in stays if per_id[i] != 1} == set()
    if not by_id:  # the edits stay inside the window: their new versions are read as well
        edit_ms = int(edit_at.timestamp() * 1000)
        assert {c.externalId for c in got if c.lastChanged == edit_ms} == set(edited)
        assert set(per_id) == set(ids)

    # The same edits, at the same moments, under plain offset paging: one skip per edit.
    control.post("/reset").raise_for_status()
    control.put("/settings", json={"feeds_by_id": by_id}).raise_for_status()
    seed_spread(control, 300, per_second=10)
    clock(control, now=edit_at.isoformat(), frozen=True)
    skipped = stays - set(plain_offset_ids(server, editing(control, edited), 50))
    assert len(skipped) == len(edited)


def test_a_window_with_more_items_than_a_page_is_read_completely(
    server: BackgroundServer, control: httpx.Client
) -> None:
    ids = seed_spread(control, 120, per_second=4)
    with reader(server) as spotler:
        got = [c.externalId for c in spotler.iter_updates(START, END, page_size=50) if isinstance(c, Contact)]
    assert sorted(got) == ids
    requests = control.get("/requests/log").json()
    assert len(requests) == feed_requests(control) > 3


def test_a_window_with_fewer_items_than_a_page_costs_one_request(
    server: BackgroundServer, control: httpx.Client
) -> None:
    ids = seed_spread(control, 49, per_second=7)
    with reader(server) as spotler:
        got = [c.externalId for c in spotler.iter_updates(START, END, page_size=50) if isinstance(c, Contact)]
    assert sorted(got) == ids
    assert feed_requests(control) == 1


def test_a_change_in_the_last_fraction_of_a_second_is_inside_the_window(
    server: BackgroundServer, control: httpx.Client
) -> None:
    clock(control, now=(T0 + timedelta(milliseconds=400)).isoformat(), frozen=True)
    seed(control, ["late"])
    end = T0 + timedelta(milliseconds=700)  # sent as whole seconds: rounded up, not down
    with reader(server) as spotler:
        got = [c.externalId for c in spotler.iter_updates(START, end) if isinstance(c, Contact)]
    assert got == ["late"]


def test_bounces_split_and_each_comes_once(server: BackgroundServer, control: httpx.Client) -> None:
    ids = seed_spread(control, 12, per_second=12)
    for n, external_id in enumerate(ids):
        kind = "HARDBOUNCE" if n % 2 else "SOFTBOUNCE"
        control.post("/bounce", json={"externalId": external_id, "type": kind}).raise_for_status()
        clock(control, advance_s=1)
    with reader(server) as spotler:
        few = [b for b in spotler.iter_bounces(START, END, page_size=20) if isinstance(b, Bounce)]
        assert feed_requests(control, "GET /contact/bounces/list") == 1
        many = [b for b in spotler.iter_bounces(START, END, page_size=5) if isinstance(b, Bounce)]
    assert sorted(b.contact.externalId for b in few) == ids
    assert sorted((b.contact.externalId, b.date, b.type) for b in many) == sorted(
        (b.contact.externalId, b.date, b.type) for b in few
    )
    assert feed_requests(control, "GET /contact/bounces/list") > 2


def crowd(control: httpx.Client, count: int) -> list[str]:
    """``count`` contacts stamped within one second: more than the largest page."""
    clock(control, now=(T0 + timedelta(milliseconds=500)).isoformat(), frozen=True)
    ids = [f"k{n:05d}" for n in range(count)]
    seed(control, ids)
    return ids


def moving(control: httpx.Client, ids: list[str]) -> Callable[[httpx.Request], None]:
    """After the first page of 10,000: ``ids`` edited ten seconds later, out of their second."""
    done: list[bool] = []

    def act(request: httpx.Request) -> None:
        if done or request.url.params["pageSize"] != "10000":
            return
        done.append(True)
        clock(control, now=(T0 + timedelta(seconds=10)).isoformat(), frozen=True)
        contacts = [{"externalId": i, "properties": {"firstName": "Moved"}} for i in ids]
        control.post("/contacts", json={"contacts": contacts}).raise_for_status()

    return act


def test_a_second_fuller_than_the_largest_page_is_paged_with_an_overlap(
    server: BackgroundServer, control: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    ids = crowd(control, 12_000)
    moved = ids[:40]  # on the first page: every later item moves forward 40 places
    with caplog.at_level(logging.WARNING), reader(server, moving(control, moved)) as spotler:
        got = [c for c in spotler.iter_updates(START, END, page_size=1000) if isinstance(c, Contact)]
    assert max(Counter((c.externalId, c.lastChanged) for c in got).values()) == 1
    assert set(ids) - {c.externalId for c in got} == set()
    assert {c.externalId for c in got if c.lastChanged == T0_MS + 10_000} == set(moved)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "more than 10000 items" in warnings[0].getMessage()
    assert "@" not in warnings[0].getMessage()


def test_more_items_leaving_than_the_overlap_fails_instead_of_skipping(
    server: BackgroundServer, control: httpx.Client
) -> None:
    ids = crowd(control, 12_000)
    with reader(server, moving(control, ids[:1500])) as spotler, pytest.raises(RetriableError) as info:
        list(spotler.iter_updates(START, END, page_size=1000))
    assert "left the second" in str(info.value)
