"""The AFAS client against a stub transport: requests it builds, answers it reads."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from clients_stub import Stub, json_reply

from connector.clients.afas import AfasClient, page_size_for, parse_afas_datetime
from connector.clients.afas_filter import Condition, Filter, Op
from connector.errors import FatalError
from connector.schemas.afas import UpdateResult
from connector.settings import Secret

BASE = "https://12345.rest.afas.online/ProfitRestServices"
DATA = "A1B2C3D4" * 8
XML = f"<token><version>1</version><data>{DATA}</data></token>"
AMS = ZoneInfo("Europe/Amsterdam")


def client(stub: Stub, token: Secret | str = XML) -> AfasClient:
    return AfasClient(BASE, token, transport=stub.transport)


def rows(n: int, start: int = 0) -> dict[str, object]:
    return {"skip": start, "take": n, "rows": [{"ContactId": i} for i in range(start, start + n)]}


@pytest.mark.parametrize(
    "token",
    [XML, DATA, Secret(XML), base64.b64encode(XML.encode()).decode()],
    ids=["xml", "bare-data", "secret", "pre-encoded"],
)
def test_the_token_header_is_base64_of_the_whole_xml(token: Secret | str) -> None:
    stub = Stub(json_reply(200, rows(0)))
    with client(stub, token) as afas:
        afas.get_page("Contacts")
    header = stub.last.headers["Authorization"]
    assert header == "AfasToken " + base64.b64encode(XML.encode()).decode()
    assert stub.last.headers["Accept"] == "application/json"


def test_the_token_never_shows_in_a_repr() -> None:
    afas = AfasClient(BASE, Secret(XML))
    assert DATA not in repr(afas)
    assert DATA not in repr(afas._http.headers)
    afas.close()


def test_get_page_sends_paging_order_and_filter() -> None:
    stub = Stub(json_reply(200, rows(2)))
    since = datetime(2024, 6, 1, 10, 0, tzinfo=ZoneInfo("UTC"))
    with client(stub) as afas:
        got = afas.get_page(
            "Spotler Contacts",
            filter=Filter.any_of(
                [Condition("ContactModified", Op.GE, since)],
                [Condition("PersonModified", Op.GE, since)],
            ),
            order_by=["ContactModified", "-ContactId"],
            skip=200,
            take=50,
        )
    assert got == [{"ContactId": 0}, {"ContactId": 1}]
    url = stub.last.url
    assert url.raw_path.split(b"?")[0] == b"/ProfitRestServices/connectors/Spotler%20Contacts"
    assert dict(url.params) == {
        "skip": "200",
        "take": "50",
        "orderbyfieldids": "ContactModified,-ContactId",
        "filterfieldids": "ContactModified;PersonModified",
        "filtervalues": "2024-06-01T12:00:00;2024-06-01T12:00:00",
        "operatortypes": "2;2",
    }


def test_iter_pages_walks_on_the_key_until_a_short_page() -> None:
    stub = Stub(
        json_reply(200, rows(3, 0)), json_reply(200, rows(3, 3)), json_reply(200, rows(1, 6))
    )
    with client(stub) as afas:
        pages = list(afas.iter_pages("C", key="ContactId", page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [dict(r.url.params) for r in stub.requests] == [
        {"skip": "0", "take": "3", "orderbyfieldids": "ContactId"},
        *[
            {
                "skip": "0",
                "take": "3",
                "orderbyfieldids": "ContactId",
                "filterfieldids": "ContactId",
                "filtervalues": last,
                "operatortypes": "4",
            }
            for last in ("2", "5")
        ],
    ]


def test_iter_pages_ands_the_key_into_every_group_of_the_filter() -> None:
    stub = Stub(json_reply(200, rows(2, 11)), json_reply(200, rows(0)))
    since = Filter.any_of([Condition("A", Op.GE, 1)], [Condition("B", Op.GE, 2)])
    with client(stub) as afas:
        pages = list(afas.iter_pages("C", key="ContactId", page_size=2, filter=since, after=10))
    assert [len(p) for p in pages] == [2]
    first, second = (dict(r.url.params) for r in stub.requests)
    assert (first["filterfieldids"], first["filtervalues"], first["operatortypes"]) == (
        "A,ContactId;B,ContactId",
        "1,10;2,10",
        "2,4;2,4",
    )
    assert second["filtervalues"] == "1,12;2,12"  # resumes after the last row's key
    assert {first["skip"], second["skip"]} == {"0"}


def test_iter_pages_never_yields_an_empty_page() -> None:
    stub = Stub(json_reply(200, rows(2)), json_reply(200, rows(0)))
    with client(stub) as afas:
        assert [len(p) for p in afas.iter_pages("C", key="ContactId", page_size=2)] == [2]
    assert len(stub.requests) == 2


def test_a_full_page_ending_without_a_key_value_is_fatal() -> None:
    page = {"skip": 0, "take": 2, "rows": [{"ContactId": 1}, {"ContactId": None}]}
    stub = Stub(json_reply(200, page))
    with client(stub) as afas, pytest.raises(FatalError) as info:
        list(afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=2))
    assert "Spotler_Contacts" in str(info.value)
    assert "ContactId" in str(info.value)
    assert len(stub.requests) == 1  # it never asks the same page again


@pytest.mark.parametrize("key", ["", "-ContactId"])
def test_iter_pages_needs_one_ascending_key(key: str) -> None:
    with (
        client(Stub(json_reply(200, rows(0)))) as afas,
        pytest.raises(ValueError, match="key column"),
    ):
        next(afas.iter_pages("C", key=key, page_size=10))


def test_a_query_string_afas_would_refuse_is_never_sent() -> None:
    stub = Stub(json_reply(200, rows(0)))
    many = Filter.any_of(*[[Condition(f"Field{i}", Op.EQ, "x" * 40)] for i in range(60)])
    with client(stub) as afas, pytest.raises(FatalError, match="2049"):
        afas.get_page("C", filter=many)
    assert stub.requests == []


def test_metainfo_and_connector_metadata() -> None:
    stub = Stub(
        json_reply(
            200,
            {
                "updateConnectors": [{"id": "KnContact", "description": "Contact"}],
                "getConnectors": [{"id": "Spotler_Contacts", "description": "x"}],
                "info": {
                    "envid": "O12345AA",
                    "appName": "Spotler",
                    "group": "",
                    "tokenExpiry": "0",
                },
            },
        ),
        json_reply(
            200,
            {
                "name": "Spotler_Contacts",
                "description": "",
                "fields": [
                    {
                        "id": "ContactId",
                        "fieldId": "U001",
                        "dataType": "int",
                        "label": "Contact",
                        "length": 9,
                        "controlType": 5,
                        "decimals": 0,
                        "decimalsFieldId": "",
                    },
                ],
            },
        ),
        json_reply(
            200,
            {
                "name": "KnPerson",
                "fields": [
                    {
                        "fieldId": "UC2DE284248374B083C966F9B4EEEE9E2",
                        "dataType": "boolean",
                        "label": "Nieuwsbrief",
                        "values": None,
                        "newInProfit8": 1,
                    }
                ],
                "objects": [{"name": "KnBasicAddressAdr", "fields": [{"fieldId": "CoId"}]}],
            },
        ),
    )
    with client(stub) as afas:
        meta = afas.metainfo()
        columns = afas.getconnector_meta("Spotler_Contacts")
        person = afas.update_meta("KnPerson")
    assert meta.update_connector_ids == {"KnContact"}
    assert meta.info is not None
    assert meta.info.envid == "O12345AA"
    assert columns.columns == ["ContactId"]
    assert columns.fields[0].dataType == "int"
    assert person.field("UC2DE284248374B083C966F9B4EEEE9E2") is not None
    assert person.objects[0].name == "KnBasicAddressAdr"
    assert [r.url.path.split("ProfitRestServices/")[1] for r in stub.requests] == [
        "metainfo",
        "metainfo/get/Spotler_Contacts",
        "metainfo/update/KnPerson",
    ]


def test_update_sends_one_element_and_reads_the_keys() -> None:
    stub = Stub(json_reply(201, {"results": {"KnPerson": {"BcCo": "1000130", "BcId": 7}}}))
    with client(stub) as afas:
        result = afas.update_person({"MatchPer": "0", "BcCo": "1000130", "UABC": True})
    assert result.keys_of("KnPerson")["BcCo"] == "1000130"
    request = stub.last
    assert request.method == "PUT"
    assert request.url.path.endswith("/connectors/KnPerson")
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.content) == {
        "KnPerson": {"Element": {"Fields": {"MatchPer": "0", "BcCo": "1000130", "UABC": True}}}
    }


def test_update_tolerates_an_empty_success_body() -> None:
    stub = Stub(httpx.Response(201), httpx.Response(200, content=b"  "))
    with client(stub) as afas:
        assert afas.update_contact({"BcCoOga": "1", "BcCoPer": "2", "Bl": True}) == UpdateResult()
        assert afas.update_organisation({"MatchOga": "0", "BcCo": "1"}) == UpdateResult()
    assert [r.url.path.rsplit("/", 1)[1] for r in stub.requests] == ["KnContact", "KnOrganisation"]


def test_a_sub_object_post_uses_the_main_connector_as_root() -> None:
    stub = Stub(httpx.Response(201))
    with client(stub) as afas:
        afas.update("KnOrganisation/KnContact", {"BcCo": "1"}, method="post")
    assert stub.last.method == "POST"
    assert stub.last.url.path.endswith("/connectors/KnOrganisation/KnContact")
    assert list(json.loads(stub.last.content)) == ["KnOrganisation"]
    with client(stub) as afas, pytest.raises(ValueError, match="PUT or POST"):
        afas.update("KnContact", {}, method="DELETE")


def test_update_writes_datetimes_as_afas_local_time() -> None:
    stub = Stub(httpx.Response(201))
    with client(stub) as afas:
        afas.update_person(
            {"BcCo": "1", "UDATE": datetime(2024, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC"))}
        )
    assert json.loads(stub.last.content)["KnPerson"]["Element"]["Fields"]["UDATE"] == (
        "2024-01-01T13:00:00"
    )


def test_afas_datetimes_are_amsterdam_local_time() -> None:
    winter = parse_afas_datetime("2024-01-15T12:30:05Z")
    assert winter == datetime(2024, 1, 15, 12, 30, 5, tzinfo=AMS)
    assert winter.utcoffset() is not None
    assert winter.utcoffset().total_seconds() == 3600
    summer = parse_afas_datetime("2024-07-01T10:00:00.1234567Z")
    assert summer.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert summer.microsecond == 123456
    assert parse_afas_datetime("2020-11-22T00:00:00Z").date().isoformat() == "2020-11-22"
    assert parse_afas_datetime("2024-01-15T11:30:05+00:00") == winter
    with pytest.raises(ValueError, match="yesterday"):
        parse_afas_datetime("yesterday")


def test_page_size_follows_the_150000_cells_rule() -> None:
    assert page_size_for(15) == 10_000
    assert page_size_for(7) == 21_428
    assert page_size_for(200_000) == 1
    assert page_size_for(0) == 150_000
