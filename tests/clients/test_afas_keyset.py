"""Keyset paging and id lookups against the real AFAS sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.clients.afas import MAX_QUERY_LENGTH, AfasClient
from connector.clients.afas_filter import Condition, Filter, Op
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.testing import running_sandbox
from connector.sandbox.server import BackgroundServer

CONTACTS = 57
SEED = 7
PAGE = 10
ROUTE = "GET /connectors/Spotler_Contacts"
UNBLOCKED = Filter.all_of(Condition("Blocked", Op.EQ, False))


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with running_sandbox(CONTACTS, SEED) as (running, _app):
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as http:
        http.post("/reset", json={"contacts": CONTACTS, "seed": SEED}).raise_for_status()
        yield http


@pytest.fixture
def afas(server: BackgroundServer, control: httpx.Client) -> Iterator[AfasClient]:
    with AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10) as client:
        yield client


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["ContactId"] for r in rows]


def unblocked(afas: AfasClient) -> list[int]:
    return ids(afas.get_page("Spotler_Contacts", filter=UNBLOCKED, order_by=["ContactId"], take=-1, skip=-1))


def block(control: httpx.Client, contact_id: int) -> None:
    edit = {"entity": "contact", "id": contact_id, "fields": {"Bl": True}}
    control.post("/edit", json=edit).raise_for_status()


def test_a_keyset_walk_reads_every_row_exactly_once(afas: AfasClient, control: httpx.Client) -> None:
    pages = list(afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=PAGE))
    walked = [i for page in pages for i in ids(page)]
    assert control.get("/requests").json()["routes"][ROUTE] == len(pages)
    assert [len(p) for p in pages] == [PAGE] * (CONTACTS // PAGE) + [CONTACTS % PAGE]
    assert walked == sorted(set(walked))
    assert walked == ids(afas.get_page("Spotler_Contacts", order_by=["ContactId"], skip=-1, take=-1))


def test_the_walk_resumes_after_a_key_value_and_keeps_the_callers_filter(afas: AfasClient) -> None:
    expected = [i for i in unblocked(afas) if i > 20]
    walked = afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=7, filter=UNBLOCKED, after=20)
    assert [i for page in walked for i in ids(page)] == expected
    assert 0 < len(expected) < CONTACTS - 20


def test_a_row_leaving_the_filter_mid_walk_hides_no_other_row(
    afas: AfasClient, control: httpx.Client
) -> None:
    before = unblocked(afas)
    walked: list[int] = []
    for number, page in enumerate(
        afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=PAGE, filter=UNBLOCKED)
    ):
        walked += ids(page)
        if number == 0:
            block(control, page[0]["ContactId"])  # a row already read leaves the filter
    assert walked == before


def test_a_skip_walk_over_the_same_change_loses_a_row(afas: AfasClient, control: httpx.Client) -> None:
    """The fault keyset paging removes is real: every later row shifts one place forward."""
    before = unblocked(afas)
    walked: list[int] = []
    skip = 0
    while True:
        page = afas.get_page(
            "Spotler_Contacts", filter=UNBLOCKED, order_by=["ContactId"], skip=skip, take=PAGE
        )
        walked += ids(page)
        if skip == 0:
            block(control, page[0]["ContactId"])
        if len(page) < PAGE:
            break
        skip += len(page)
    assert set(before) - set(walked) == {before[PAGE]}  # the first row of page 2 was never read


def test_rows_by_ids_returns_exactly_the_existing_ones(afas: AfasClient, control: httpx.Client) -> None:
    asked = [str(n) for n in range(1, 101)]  # 1..57 exist
    control.delete("/requests").raise_for_status()
    found = afas.rows_by_ids("Spotler_Contacts", key="ContactId", ids=asked)
    assert sorted(found, key=int) == [str(n) for n in range(1, CONTACTS + 1)]
    assert all(row["ContactId"] == int(i) for i, row in found.items())
    # As few calls as the query-length limit allows: 100 short ids fit in two.
    assert control.get("/requests").json()["routes"][ROUTE] == 2


def test_rows_by_ids_fills_each_call_up_to_the_query_limit(afas: AfasClient, control: httpx.Client) -> None:
    asked = [str(n) for n in range(100_000_000, 100_000_300)]  # nine digits, as real ContactIds have
    sent: list[httpx.Request] = []
    afas._http.event_hooks["request"].append(sent.append)
    assert afas.rows_by_ids("Spotler_Contacts", key="ContactId", ids=asked) == {}
    lengths = [len(r.url.query) + 1 for r in sent]
    assert len(sent) == 5
    assert all(MAX_QUERY_LENGTH - 40 < n <= MAX_QUERY_LENGTH for n in lengths[:-1])


def test_ids_that_cannot_be_a_contact_id_are_skipped(afas: AfasClient, control: httpx.Client) -> None:
    asked = ["²", "007", "12a", " 3", "", "-4", "٣", "5", "5"]
    found = afas.rows_by_ids("Spotler_Contacts", key="ContactId", ids=asked)
    assert list(found) == ["5"]
    control.delete("/requests").raise_for_status()
    assert afas.rows_by_ids("Spotler_Contacts", key="ContactId", ids=["²", "abc"]) == {}
    assert control.get("/requests").json()["total"] == 0  # nothing left to ask for
