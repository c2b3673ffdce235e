"""GetConnector reads over HTTP: paging, ordering, every filter operator, AND/OR, errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from connector.sandbox.afas.testing import auth_header, running_sandbox

Row = dict[str, Any]
CONNECTOR = "/connectors/Spotler_Contacts"


@pytest.fixture(scope="module")
def afas() -> Iterator[httpx.Client]:
    """A read-only sandbox shared by this module's tests (nothing here writes)."""
    with running_sandbox(contacts=400, seed=7) as (server, _app):
        base = f"{server.url}/ProfitRestServices"
        with httpx.Client(base_url=base, headers=auth_header(), timeout=30) as client:
            yield client


@pytest.fixture(scope="module")
def everything(afas: httpx.Client) -> list[Row]:
    response = afas.get(CONNECTOR, params={"skip": -1, "take": -1, "orderbyfieldids": "ContactId"})
    assert response.status_code == 200
    return list(response.json()["rows"])


def rows_for(afas: httpx.Client, **params: Any) -> list[Row]:
    params.setdefault("skip", -1)
    params.setdefault("take", -1)
    params.setdefault("orderbyfieldids", "ContactId")
    response = afas.get(CONNECTOR, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["rows"])


def ids(rows: list[Row]) -> list[int]:
    return [r["ContactId"] for r in rows]


def test_defaults_are_skip_0_take_100_and_echoed(afas: httpx.Client, everything: list[Row]) -> None:
    body = afas.get(CONNECTOR, params={"orderbyfieldids": "ContactId"}).json()
    assert (body["skip"], body["take"]) == (0, 100)
    assert body["rows"] == everything[:100]
    body = afas.get(CONNECTOR, params={"skip": 390, "take": 50, "orderbyfieldids": "ContactId"}).json()
    assert (body["skip"], body["take"], len(body["rows"])) == (390, 50, 10)


def test_minus_one_returns_all_and_bad_combinations_fail(afas: httpx.Client, everything: list[Row]) -> None:
    assert len(everything) == 400
    assert ids(rows_for(afas, skip=0, take=-1)) == ids(everything)
    for params in ({"skip": 2, "take": -1}, {"skip": 0, "take": -5}, {"take": "many"}):
        response = afas.get(CONNECTOR, params=params)
        assert response.status_code == 500
        assert set(response.json()) == {"externalMessage", "errorNumber", "profitLogReference"}
    # Profit treats a skip below -1 or a non-number as 0, and take=0 returns one row.
    assert ids(rows_for(afas, skip=-7, take=3)) == ids(everything[:3])
    assert ids(rows_for(afas, skip="x", take=0)) == ids(everything[:1])


def test_rows_have_every_column_with_nulls_and_types(everything: list[Row]) -> None:
    columns = set(everything[0])
    assert all(set(r) == columns for r in everything)
    assert "Newsletter" in columns
    assert "OrganisationModified" in columns
    assert any(r["PersonNo"] is None for r in everything)  # AFD: a department, no person
    assert any(r["OrganisationId"] is None for r in everything)  # PER: no organisation
    for row in everything:
        assert isinstance(row["ContactId"], int)
        assert isinstance(row["Blocked"], bool)
        assert isinstance(row["Newsletter"], bool)
        assert row["ContactModified"].endswith("Z")
        assert len(row["ContactModified"]) == 20


def test_paging_walk_is_stable_and_complete(afas: httpx.Client, everything: list[Row]) -> None:
    order = "OrganisationId,-ContactModified,ContactId"
    walked: list[Row] = []
    for skip in range(0, 1000, 37):
        page = afas.get(CONNECTOR, params={"skip": skip, "take": 37, "orderbyfieldids": order})
        walked += page.json()["rows"]
        if len(page.json()["rows"]) < 37:
            break
    assert ids(walked) == ids(rows_for(afas, orderbyfieldids=order))
    assert sorted(ids(walked)) == ids(everything)


def test_ordering_several_fields_descending_and_nulls(afas: httpx.Client) -> None:
    rows = rows_for(afas, orderbyfieldids="-LastName,ContactId")
    keys = [((r["LastName"] or "").casefold(), r["ContactId"]) for r in rows]
    non_null = [k for k, r in zip(keys, rows, strict=True) if r["LastName"] is not None]
    assert [k[0] for k in non_null] == sorted((k[0] for k in non_null), reverse=True)
    assert rows[-1]["LastName"] is None  # NULLs last when descending, first when ascending
    assert rows_for(afas, orderbyfieldids="LastName")[0]["LastName"] is None
    by_org = rows_for(afas, orderbyfieldids="OrganisationName,-ContactId")
    pairs = [((r["OrganisationName"] or "").casefold(), -r["ContactId"]) for r in by_org]
    assert pairs == sorted(pairs)


def _text(value: Any) -> str:
    return "" if value is None else str(value).casefold()


OPERATOR_CASES: list[tuple[int, str, str, Callable[[Any], bool]]] = [
    (1, "City", "amsterdam", lambda v: _text(v) == "amsterdam"),
    (2, "ContactId", "390", lambda v: v >= 390),
    (3, "ContactId", "5", lambda v: v <= 5),
    (4, "ContactId", "395", lambda v: v > 395),
    (5, "ContactId", "4", lambda v: v < 4),
    (6, "LastName", "berg", lambda v: "berg" in _text(v)),
    (6, "LastName", "%berg%", lambda v: "berg" in _text(v)),
    (7, "Gender", "M", lambda v: v is None or v != "M"),
    (8, "Phone", "", lambda v: v is None),
    (9, "PersonNo", "[is leeg]", lambda v: v is not None),
    (10, "Email", "j", lambda v: _text(v).startswith("j")),
    (10, "Email", "j%", lambda v: _text(v).startswith("j")),
    (11, "Email", "example.nl", lambda v: "example.nl" not in _text(v)),
    (12, "FirstName", "s%", lambda v: not _text(v).startswith("s")),
    (13, "Email", ".com", lambda v: _text(v).endswith(".com")),
    (13, "Email", "%.com", lambda v: _text(v).endswith(".com")),
    (14, "Email", ".nl", lambda v: not _text(v).endswith(".nl")),
    (15, "OrganisationName", "b.v.", lambda v: "b.v." in _text(v)),
    (1, "Newsletter", "true", lambda v: v is True),
    (1, "Newsletter", "0", lambda v: v is False),
    (7, "Blocked", "1", lambda v: v is False),
]


@pytest.mark.parametrize(("op", "field", "value", "expect"), OPERATOR_CASES)
def test_every_operator(
    afas: httpx.Client,
    everything: list[Row],
    op: int,
    field: str,
    value: str,
    expect: Callable[[Any], bool],
) -> None:
    got = rows_for(afas, filterfieldids=field, filtervalues=value, operatortypes=str(op))
    wanted = [r for r in everything if (r[field] is not None or op in (7, 8, 11, 12, 14)) and expect(r[field])]
    assert wanted, "the seed should give every case something to find"
    assert ids(got) == ids(wanted)


def test_wildcards_inside_a_value(afas: httpx.Client, everything: list[Row]) -> None:
    got = rows_for(afas, filterfieldids="Email", filtervalues="j%example", operatortypes="10")
    wanted = [r for r in everything if _text(r["Email"]).startswith("j") and "example" in _text(r["Email"])]
    assert ids(got) == ids(wanted)


def test_and_or_groups(afas: httpx.Client, everything: list[Row]) -> None:
    got = rows_for(
        afas,
        filterfieldids="ContactId,Newsletter;ContactId",
        filtervalues="100,true;7",
        operatortypes="5,1;1",
    )
    wanted = [r for r in everything if (r["ContactId"] < 100 and r["Newsletter"]) or r["ContactId"] == 7]
    assert ids(got) == ids(wanted)


def test_percent_encoded_separators_in_the_raw_query(afas: httpx.Client, everything: list[Row]) -> None:
    raw = (
        f"{CONNECTOR}?take=-1&skip=-1&orderbyfieldids=ContactId"
        "&filterfieldids=ContactId%2CNewsletter%3BContactId"
        "&filtervalues=100%2Ctrue%3B7&operatortypes=5%2C1%3B1"
    )
    got = afas.get(raw).json()["rows"]
    wanted = [r for r in everything if (r["ContactId"] < 100 and r["Newsletter"]) or r["ContactId"] == 7]
    assert ids(got) == ids(wanted)


def test_filterjson(afas: httpx.Client, everything: list[Row]) -> None:
    doc = {
        "Filters": {
            "Filter": [
                {
                    "@FilterId": "Filter 1",
                    "Field": [
                        {"@FieldId": "ContactId", "@OperatorType": "5", "#text": "50"},
                        {"@FieldId": "Blocked", "@OperatorType": "1", "#text": "false"},
                    ],
                },
                {"@FilterId": "Filter 2", "Field": {"@FieldId": "ContactId", "@OperatorType": "1", "#text": "300"}},
            ]
        }
    }
    got = rows_for(afas, filterjson=json.dumps(doc))
    wanted = [r for r in everything if (r["ContactId"] < 50 and not r["Blocked"]) or r["ContactId"] == 300]
    assert ids(got) == ids(wanted)


def test_date_filters_take_local_time_with_or_without_z(afas: httpx.Client, everything: list[Row]) -> None:
    pivot = sorted(r["ContactModified"] for r in everything)[200][:19]
    plain = rows_for(afas, filterfieldids="ContactModified", filtervalues=pivot, operatortypes="2")
    zulu = rows_for(afas, filterfieldids="ContactModified", filtervalues=pivot + "Z", operatortypes="2")
    assert ids(plain) == ids(zulu)
    # Displayed values are rounded to the second, so compare with a one-second margin.
    assert all(r["ContactModified"][:19] >= pivot for r in plain)
    assert len(plain) in range(199, 202)
    day = pivot[:10]
    since_day = rows_for(afas, filterfieldids="ContactModified", filtervalues=day, operatortypes="2")
    assert ids(since_day) == ids([r for r in everything if r["ContactModified"][:10] >= day])


def test_filter_errors(afas: httpx.Client) -> None:
    cases = [
        {"filterfieldids": "Nope", "filtervalues": "1", "operatortypes": "1"},
        {"filterfieldids": "ContactId", "filtervalues": "abc", "operatortypes": "1"},
        {"filterfieldids": "Newsletter", "filtervalues": "ja", "operatortypes": "1"},
        {"filterfieldids": "ContactModified", "filtervalues": "gisteren", "operatortypes": "2"},
        {"filterfieldids": "ContactId,City", "filtervalues": "1", "operatortypes": "1,1"},
        {"filterfieldids": "ContactId", "filtervalues": "1", "operatortypes": "16"},
        {"filterjson": "{not json"},
        {"orderbyfieldids": "Nope"},
    ]
    for params in cases:
        response = afas.get(CONNECTOR, params=params)
        assert response.status_code == 500, params
        body = response.json()
        assert isinstance(body["errorNumber"], int)
        assert len(body["profitLogReference"]) == 32
    missing = afas.get(CONNECTOR, params={"filterfieldids": "Nope", "filtervalues": "1"})
    assert missing.json()["externalMessage"] == "Connector field 'Nope' not found"


def test_query_string_limit_is_a_404(afas: httpx.Client) -> None:
    base = f"{CONNECTOR}?filterfieldids=City&operatortypes=1&filtervalues="
    filler = 2049 - len(base.split("?", 1)[1]) - 1
    ok = afas.get(base + "x" * filler)
    assert ok.status_code == 200
    too_long = afas.get(base + "x" * (filler + 1))
    assert too_long.status_code == 404
    assert too_long.content == b""


def test_prefix_is_case_insensitive_and_unknown_paths_404(afas: httpx.Client) -> None:
    root = str(afas.base_url).rsplit("/ProfitRestServices", 1)[0]
    for prefix in ("/profitrestservices", "/PROFITRESTSERVICES"):
        response = httpx.get(f"{root}{prefix}{CONNECTOR}", headers=auth_header())
        assert response.status_code == 200
    assert httpx.get(f"{root}/other{CONNECTOR}", headers=auth_header()).status_code == 404
    assert afas.get("/nothing/here").status_code == 404
    assert afas.get("/connectors/Unknown_Connector").status_code == 500


def test_values_with_spaces_and_unicode_survive_encoding(afas: httpx.Client, everything: list[Row]) -> None:
    target = next(r for r in everything if r["City"] and " " in r["City"])
    raw = f"{CONNECTOR}?skip=-1&take=-1&filterfieldids=City&operatortypes=1&filtervalues={quote(target['City'])}"
    got = afas.get(raw).json()["rows"]
    assert target["ContactId"] in ids(got)
    odd = next(r for r in everything if r["LastName"] and any(ord(ch) > 0x2000 for ch in r["LastName"]))
    found = rows_for(afas, filterfieldids="LastName", filtervalues=odd["LastName"], operatortypes="1")
    assert odd["ContactId"] in ids(found)
