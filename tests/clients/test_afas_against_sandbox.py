"""The AFAS client against the real AFAS sandbox over HTTP: paging, filters, writes, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.clients.afas import AfasClient, parse_afas_datetime
from connector.clients.afas_filter import Condition, Filter, Op
from connector.errors import AuthError, FatalError, RecordRejected, RetriableError
from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app
from connector.sandbox.server import BackgroundServer

CONTACTS = 57
SEED = 7
NEWSLETTER = "U74BB4FF508DD36A73F8DF61FDBBB8754"  # the sandbox's free yes/no field
MODIFIED = ("ContactModified", "PersonModified", "OrganisationModified")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(CONTACTS, SEED, DEFAULT_TOKEN)) as running:
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


def all_rows(afas: AfasClient) -> list[dict[str, Any]]:
    return [
        r
        for page in afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=10)
        for r in page
    ]


def row(afas: AfasClient, contact_id: int) -> dict[str, Any]:
    rows = afas.get_page(
        "Spotler_Contacts", filter=Filter.all_of(Condition("ContactId", Op.EQ, contact_id))
    )
    assert len(rows) == 1
    return rows[0]


def test_metainfo_lists_what_the_token_may_use(afas: AfasClient) -> None:
    meta = afas.metainfo()
    assert {"KnContact", "KnPerson", "KnOrganisation"} <= meta.update_connector_ids
    assert "Spotler_Contacts" in meta.get_connector_ids
    columns = afas.getconnector_meta("Spotler_Contacts").columns
    assert {"ContactId", "PersonNo", "OrganisationId", "Email", *MODIFIED} <= set(columns)
    contact = afas.update_meta("KnContact")
    assert {"Bl", "EmAd", NEWSLETTER} <= contact.field_ids


def test_paging_walks_every_row_once_in_order(afas: AfasClient, control: httpx.Client) -> None:
    rows = all_rows(afas)
    ids = [r["ContactId"] for r in rows]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    pages = control.get("/requests").json()["routes"]["GET /connectors/Spotler_Contacts"]
    assert pages == len(ids) // 10 + 1
    everything = afas.get_page("Spotler_Contacts", skip=-1, take=-1)  # AFAS's "get all"
    assert sorted(r["ContactId"] for r in everything) == ids


def test_an_or_of_modification_dates_matches_a_local_filter(afas: AfasClient) -> None:
    rows = all_rows(afas)
    stamps = sorted(parse_afas_datetime(r["ContactModified"]) for r in rows)
    since = stamps[len(stamps) // 2]
    either = Filter.any_of(*[[Condition(column, Op.GE, since)] for column in MODIFIED])
    got = {
        r["ContactId"] for r in afas.get_page("Spotler_Contacts", filter=either, take=-1, skip=-1)
    }
    expected = {
        r["ContactId"]
        for r in rows
        if any(r[c] is not None and parse_afas_datetime(r[c]) >= since for c in MODIFIED)
    }
    assert got == expected
    assert 0 < len(got) < len(rows)


def test_a_value_with_a_separator_goes_through_filterjson(afas: AfasClient) -> None:
    first = all_rows(afas)[0]
    name = f"{first['LastName']}, {first['FirstName']}"
    both = Filter.any_of(
        [Condition("ContactId", Op.EQ, first["ContactId"]), Condition("LastName", Op.NE, name)],
        [Condition("LastName", Op.EQ, name)],
    )
    assert "filterjson" in both.to_params()
    assert [r["ContactId"] for r in afas.get_page("Spotler_Contacts", filter=both)] == [
        first["ContactId"]
    ]


def test_writes_change_only_what_they_name(afas: AfasClient) -> None:
    before = all_rows(afas)[0]
    afas.update_contact(
        {
            "BcCoOga": before["OrganisationId"],
            "BcCoPer": before["PersonNo"],
            NEWSLETTER: not before["Newsletter"],
        }
    )
    afas.update_person({"MatchPer": "0", "BcCo": before["PersonNo"], "FiNm": "Anneke"})
    after = row(afas, before["ContactId"])
    assert after["Newsletter"] is (not before["Newsletter"])
    assert after["FirstName"] == "Anneke"
    assert after["Email"] == before["Email"]
    assert parse_afas_datetime(after["ContactModified"]) >= parse_afas_datetime(
        before["ContactModified"]
    )


def test_a_validation_failure_rejects_the_record(afas: AfasClient) -> None:
    first = all_rows(afas)[0]
    with pytest.raises(RecordRejected) as info:
        afas.update_contact(
            {"BcCoOga": first["OrganisationId"], "BcCoPer": first["PersonNo"], "EmAd": "no-at-sign"}
        )
    assert info.value.status == 500
    assert info.value.detail is not None
    assert "profitLogReference" in info.value.detail


def test_a_wrong_token_is_refused(server: BackgroundServer, control: httpx.Client) -> None:
    with (
        AfasClient(f"{server.url}/ProfitRestServices", "0" * 64) as stranger,
        pytest.raises(AuthError),
    ):
        stranger.metainfo()


def test_a_connector_outside_the_app_connector_is_refused(afas: AfasClient) -> None:
    with pytest.raises(AuthError):
        afas.get_page("HrEmployees")


def test_an_overlong_query_never_leaves_the_client(afas: AfasClient, control: httpx.Client) -> None:
    many = Filter.any_of(*[[Condition("LastName", Op.EQ, "x" * 40)] for _ in range(60)])
    with pytest.raises(FatalError, match="2049"):
        afas.get_page("Spotler_Contacts", filter=many)
    assert control.get("/requests").json()["total"] == 0


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"maintenance": True, "maintenance_retry_after_s": 90}, 503),
        ({"error_rate": 1.0, "error_status": 500}, 500),
        ({"max_parallel": 0}, 500),
        ({"error_rate": 1.0, "error_status": 502}, 502),
    ],
    ids=["maintenance", "unexpected-error", "too-many-parallel", "bad-gateway"],
)
def test_injected_faults_are_retriable(
    afas: AfasClient, control: httpx.Client, faults: dict[str, Any], status: int
) -> None:
    control.put("/faults", json=faults).raise_for_status()
    with pytest.raises(RetriableError) as info:
        afas.update_person({"MatchPer": "0", "BcCo": "100006", "FiNm": "X"})
    assert info.value.status == status
    if status == 503:
        assert info.value.retry_after == 90
