"""Spotler → AFAS end to end: all four processes, both sandboxes, real Redis.

"AFAS calls" below are UpdateConnector writes (``PUT /connectors/Kn*``); the
producers' GetConnector reads happen every poll whatever changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.e2e.helpers import MAPPING, afas_expectation, wait_for_quiet

from connector.stack import Stack, wait_until
from connector.state.conflicts import ConflictStore

pytestmark = pytest.mark.e2e

POLL_S = 2.0
ARRIVAL_DEADLINE_S = 120  # a correctness check; the latency itself is bench/latency.py's figure
BOTH = ("afas", "spotler")
AFAS_WRITES = ("PUT /connectors/KnContact", "PUT /connectors/KnPerson", "PUT /connectors/KnOrganisation")
SPOTLER_WRITES = ("POST /contact/list", "POST /contact", "PUT /contact/{id}")


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    with Stack(tmp_path, redis_url=redis_url, contacts=600, seed=5, env={"POLL_INTERVAL_S": str(POLL_S)}) as s:
        s.start_sandboxes()
        s.start("spotler-worker", "work", "--queue", "spotler", "--threads", "4")
        s.start("afas-worker", "work", "--queue", "afas", "--threads", "4")
        s.start("afas-producer", "produce", "afas")
        s.start("spotler-producer", "produce", "spotler")
        wait_for_quiet(s, redis_client, sources=BOTH)
        wait_for_quiet(s, redis_client, sources=BOTH)
        yield s


def afas_row(stack: Stack, cid: str) -> dict[str, Any]:
    row: dict[str, Any] = stack.afas("GET", f"contacts/{cid}")
    return row.get("row", row)


def pick(stack: Stack, **want: Any) -> str:
    valid, _ = afas_expectation(stack)
    for cid in sorted(valid, key=int):
        values = valid[cid].values
        if all(values.get(k) == v for k, v in want.items()) and not valid[cid].blocked:
            return cid
    raise AssertionError(f"no contact with {want}")


def counts(stack: Stack) -> tuple[dict[str, int], dict[str, int]]:
    return stack.afas("GET", "requests")["routes"], stack.spotler("GET", "requests")["routes"]


def reset_counts(stack: Stack) -> None:
    stack.afas("DELETE", "requests")
    stack.spotler("DELETE", "requests")


def other_columns(row: dict[str, Any], column: str) -> dict[str, Any]:
    """The mapped GetConnector columns of a row but ``column`` and the modification dates (an edit moves those)."""
    return {k: row[k] for k in MAPPING.columns if k != column and k not in MAPPING.keys.modified}


def settle(stack: Stack, client: redis.Redis, cycles: int = 3) -> None:
    for _ in range(cycles):
        wait_for_quiet(stack, client, sources=BOTH)


def test_unsubscribe_reaches_afas(stack: Stack) -> None:
    cid = pick(stack, **{"permissions.1": True})
    before = afas_row(stack, cid)
    stack.spotler("POST", "unsubscribe", json={"externalId": cid, "bit": 1})
    wait_until(lambda: afas_row(stack, cid)["Newsletter"] is False, timeout_s=ARRIVAL_DEADLINE_S, interval_s=0.2)
    assert other_columns(afas_row(stack, cid), "Newsletter") == other_columns(before, "Newsletter")


@pytest.mark.parametrize(("prop", "value", "column"), [
    ("lastName", "Vermeulen-Gerritsen", "LastName"),
    ("email", "profiel.wijziging@example.nl", "Email"),
])
def test_profile_edit_reaches_afas(stack: Stack, prop: str, value: str, column: str) -> None:
    cid = pick(stack)
    before = afas_row(stack, cid)
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {prop: value}})
    wait_until(lambda: afas_row(stack, cid)[column] == value, timeout_s=ARRIVAL_DEADLINE_S, interval_s=0.2)
    assert other_columns(afas_row(stack, cid), column) == other_columns(before, column)


def test_one_change_costs_one_write_and_never_echoes(stack: Stack, redis_client: redis.Redis) -> None:
    cid = pick(stack, **{"permissions.1": True})
    row = afas_row(stack, cid)
    # An AFAS-side change: exactly one Spotler write, no AFAS write.
    reset_counts(stack)
    stack.afas("POST", "edit", json={"entity": "person", "id": row["PersonNo"], "fields": {"FiNm": "Annelies"}})
    settle(stack, redis_client)
    afas, spotler = counts(stack)
    assert sum(spotler.get(r, 0) for r in SPOTLER_WRITES) == 1
    assert sum(afas.get(r, 0) for r in AFAS_WRITES) == 0
    # A Spotler-side change of a contact field and a person field: one call per entity, no Spotler write.
    reset_counts(stack)
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"lastName": "Zijlstra"}})
    stack.spotler("POST", "unsubscribe", json={"externalId": cid, "bit": 1})
    settle(stack, redis_client)
    afas, spotler = counts(stack)
    assert afas.get("PUT /connectors/KnContact", 0) == 1
    assert afas.get("PUT /connectors/KnPerson", 0) == 1
    assert afas.get("PUT /connectors/KnOrganisation", 0) == 0
    assert sum(spotler.get(r, 0) for r in SPOTLER_WRITES) == 0
    assert afas_row(stack, cid)["LastName"] == "Zijlstra"
    assert afas_row(stack, cid)["Newsletter"] is False


def test_one_way_fields_edited_in_spotler_never_reach_afas(stack: Stack, redis_client: redis.Redis) -> None:
    cid = pick(stack)
    before = afas_row(stack, cid)
    reset_counts(stack)
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {
        "organisation": "Andere Naam B.V.", "city": "Zwolle", "sector": "9999"}})
    settle(stack, redis_client)
    afas, _ = counts(stack)
    assert sum(afas.get(r, 0) for r in AFAS_WRITES) == 0
    after = afas_row(stack, cid)
    assert (after["OrganisationName"], after["City"], after["Sector"]) == (
        before["OrganisationName"], before["City"], before["Sector"])
    # AFAS owns them: Spotler gets AFAS's values back.
    spotler = stack.spotler("GET", f"contacts/{cid}")["properties"]
    assert spotler.get("organisation") == before["OrganisationName"]
    assert spotler.get("city") == before["City"]


def test_a_conflict_ends_in_the_owner_rules_value_on_both_sides(stack: Stack, redis_client: redis.Redis) -> None:
    cid = pick(stack)
    row = afas_row(stack, cid)
    # customerType: owner "afas" in the example mapping. Both sides change it between two polls.
    stack.afas("POST", "edit", json={"entity": "organisation", "id": row["OrganisationId"],
                                     "fields": {"UCC690F77030D0AD3D3D411F648A10379": "Prospect AFAS"}})
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"customerType": "Spotler-kant"}})
    settle(stack, redis_client)
    assert afas_row(stack, cid)["CustomerType"] == "Prospect AFAS"
    assert stack.spotler("GET", f"contacts/{cid}")["properties"]["customerType"] == "Prospect AFAS"
    recorded = [r.conflict for r in ConflictStore(redis_client).list()]
    assert any(c.contact_id == cid and c.field == "customerType" and c.winner == "afas" for c in recorded)
