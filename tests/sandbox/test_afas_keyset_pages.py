"""Keyset pages (``key > last`` on the sort key): answered from a cached order, exactly as plainly evaluated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox.afas.app import AfasSandbox
from connector.sandbox.afas.testing import auth_header, running_sandbox

Row = dict[str, Any]
Group = list[tuple[str, str, int]]  # (field, value, operator)
CONNECTOR = "/connectors/Spotler_Contacts"
# Holds for every row; appended to each group it hides a trailing key condition from the bisect.
EVERY_ROW = ("ContactId", "", 9)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[httpx.Client, AfasSandbox]]:
    with running_sandbox(contacts=400, seed=11) as (server, app):
        base = f"{server.url}/ProfitRestServices"
        with httpx.Client(base_url=base, headers=auth_header(), timeout=30) as client:
            yield client, app


@pytest.fixture
def afas(sandbox: tuple[httpx.Client, AfasSandbox]) -> httpx.Client:
    return sandbox[0]


def compact(groups: list[Group]) -> dict[str, str]:
    return {
        "filterfieldids": ";".join(",".join(f for f, _, _ in g) for g in groups),
        "filtervalues": ";".join(",".join(v for _, v, _ in g) for g in groups),
        "operatortypes": ";".join(",".join(str(o) for _, _, o in g) for g in groups),
    }


def get(afas: httpx.Client, groups: list[Group], order: str, **params: Any) -> list[Row]:
    params.setdefault("skip", -1)
    params.setdefault("take", -1)
    response = afas.get(CONNECTOR, params={"orderbyfieldids": order, **compact(groups), **params})
    assert response.status_code == 200, response.text
    return list(response.json()["rows"])


def plainly(groups: list[Group]) -> list[Group]:
    return [[*g, EVERY_ROW] for g in groups]


def ids(rows: list[Row]) -> list[int]:
    return [r["ContactId"] for r in rows]


CASES: list[tuple[str, list[Group]]] = [
    ("ContactId", [[("ContactId", "123", 4)]]),
    ("ContactId", [[("Blocked", "false", 1), ("ContactId", "123", 4)]]),
    (
        "ContactId",
        [[("Newsletter", "true", 1), ("ContactId", "150", 4)], [("City", "amsterdam", 1), ("ContactId", "150", 4)]],
    ),
    ("ContactId", [[("Newsletter", "true", 1), ("ContactId", "150", 4)], [("ContactId", "150", 4)]]),
    ("contactid,LastName", [[("Email", "", 9), ("CONTACTID", "77", 4)]]),
    ("LastName,ContactId", [[("LastName", "m", 4)]]),
    ("LastName", [[("Gender", "M", 7), ("LastName", "de Vries", 4)]]),
    ("ContactModified,ContactId", [[("ContactModified", "<median>", 4)]]),
    ("OrganisationId,ContactId", [[("OrganisationId", "100005", 4)]]),
]
# Not keyset pages: the plain evaluation answers them, and must still be right.
OTHERS: list[tuple[str, list[Group]]] = [
    ("-ContactId", [[("ContactId", "123", 4)]]),
    ("ContactId", [[("ContactId", "1%", 4)]]),
    ("ContactId", [[("Newsletter", "true", 1), ("ContactId", "150", 4)], [("ContactId", "300", 4)]]),
    ("LastName", [[("ContactId", "123", 4)]]),
    ("ContactId", [[("ContactId", "123", 2)]]),
]


@pytest.mark.parametrize(
    ("order", "groups", "bisects"), [(*c, True) for c in CASES] + [(*c, False) for c in OTHERS]
)
def test_a_keyset_page_equals_the_plain_evaluation(
    sandbox: tuple[httpx.Client, AfasSandbox], order: str, groups: list[Group], bisects: bool
) -> None:
    afas, app = sandbox
    stamps = sorted(r["ContactModified"] for r in get(afas, [], "ContactId"))
    median = stamps[len(stamps) // 2].rstrip("Z")  # the sandbox's dates follow its clock
    groups = [[(f, median if v == "<median>" else v, o) for f, v, o in g] for g in groups]
    expected = get(afas, plainly(groups), order)
    orders = app.afas.views["Spotler_Contacts"]._orders
    orders.clear()
    assert get(afas, groups, order) == expected
    assert 0 < len(expected) < 400
    for skip, take in ((0, 7), (5, 10), (len(expected) - 3, 10)):
        assert get(afas, groups, order, skip=skip, take=take) == expected[skip : skip + take]
    assert len(orders) == 1  # skip and take only slice
    if bisects:  # a page further on bisects the same order
        middle = expected[len(expected) // 2]
        column = next(c for c in middle if c.casefold() == groups[0][-1][0].casefold())
        value = str(middle[column]).rstrip("Z")
        further = [[*g[:-1], (g[-1][0], value, 4)] for g in groups]
        page = get(afas, further, order, take=10)
        assert len(orders) == 1
        assert page == get(afas, plainly(further), order, take=10)
        assert page
        # The middle row itself may qualify: a date shows whole seconds, and is kept finer.
        assert page[0] in expected[len(expected) // 2 :]


def test_filterjson_keyset_pages_equal_the_plain_evaluation(afas: httpx.Client) -> None:
    def as_json(groups: list[Group]) -> str:
        filters = [
            {"@FilterId": f"F{i}", "Field": [{"@FieldId": f, "@OperatorType": str(o), "#text": v} for f, v, o in g]}
            for i, g in enumerate(groups)
        ]
        return json.dumps({"Filters": {"Filter": filters}})

    def rows(groups: list[Group]) -> list[Row]:
        params = {"orderbyfieldids": "ContactId", "take": -1, "filterjson": as_json(groups)}
        return list(afas.get(CONNECTOR, params=params).json()["rows"])

    groups: list[Group] = [[("LastName", "Jansen, J.", 7), ("ContactId", "200", 4)]]
    assert rows(groups) == rows(plainly(groups))
    assert ids(rows(groups)) == list(range(201, 401))


def test_a_bad_key_value_fails_as_the_plain_evaluation_does(afas: httpx.Client) -> None:
    for groups in ([[("ContactId", "abc", 4)]], plainly([[("ContactId", "abc", 4)]])):
        response = afas.get(CONNECTOR, params={"orderbyfieldids": "ContactId", **compact(groups)})
        assert response.status_code == 500
        assert "not a valid number" in response.json()["externalMessage"]


def test_a_keyset_walk_reuses_one_cached_order(sandbox: tuple[httpx.Client, AfasSandbox]) -> None:
    afas, app = sandbox
    view = app.afas.views["Spotler_Contacts"]
    view._orders.clear()
    walked: list[int] = []
    last: int | None = None
    while True:
        groups: list[Group] = [[("Blocked", "false", 1)] + ([("ContactId", str(last), 4)] if last else [])]
        page = get(afas, groups, "ContactId", skip=0, take=30)
        walked += ids(page)
        if len(page) < 30:
            break
        last = page[-1]["ContactId"]
    assert walked == ids(get(afas, [[("Blocked", "false", 1)]], "ContactId"))
    assert len(walked) > 300
    assert len(view._orders) == 1  # every page after the first bisected the first page's order


def test_a_keyset_page_sees_a_write_made_between_pages(sandbox: tuple[httpx.Client, AfasSandbox]) -> None:
    afas, _app = sandbox
    groups: list[Group] = [[("Blocked", "false", 1), ("ContactId", "10", 4)]]
    first = get(afas, groups, "ContactId", skip=0, take=5)
    control = httpx.Client(base_url=str(afas.base_url).replace("/ProfitRestServices", "/_sandbox"))
    with control:
        edit = {"entity": "contact", "id": first[1]["ContactId"], "fields": {"Bl": True}}
        control.post("/edit", json=edit).raise_for_status()
        after = get(afas, groups, "ContactId", skip=0, take=5)
        assert first[1]["ContactId"] not in ids(after)
        assert after == get(afas, plainly(groups), "ContactId", skip=0, take=5)
        control.post("/edit", json={**edit, "fields": {"Bl": False}}).raise_for_status()
