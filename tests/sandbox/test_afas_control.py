"""The control API: reset, inspection, edits made inside AFAS, definitions, token grants."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox.afas.app import route_of
from connector.sandbox.afas.catalogue import EMAIL_BOUNCED, NEWSLETTER
from connector.sandbox.afas.testing import auth_header, running_sandbox

ALL = {"skip": -1, "take": -1, "orderbyfieldids": "ContactId"}


class Sandbox:
    def __init__(self, url: str) -> None:
        self.api = httpx.Client(base_url=f"{url}/ProfitRestServices", headers=auth_header(), timeout=30)
        self.control = httpx.Client(base_url=f"{url}/_sandbox", timeout=30)

    def rows(self, connector: str = "Spotler_Contacts", order: str = "ContactId") -> list[dict[str, Any]]:
        response = self.api.get(f"/connectors/{connector}", params={**ALL, "orderbyfieldids": order})
        assert response.status_code == 200, response.text
        return list(response.json()["rows"])


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(contacts=50, seed=2) as (server, _app):
        client = Sandbox(server.url)
        client.control.post("/clock", json={"now": "2024-09-01T12:00:00+02:00"})
        yield client


def test_reset_is_deterministic_per_seed(sandbox: Sandbox) -> None:
    assert sandbox.control.post("/reset", json={"contacts": 80, "seed": 4}).json()["contacts"] == 80
    first = sandbox.api.get("/connectors/Spotler_Contacts", params=ALL).content
    sandbox.control.post("/reset", json={"contacts": 80, "seed": 4})
    assert sandbox.api.get("/connectors/Spotler_Contacts", params=ALL).content == first
    sandbox.control.post("/reset", json={"contacts": 80, "seed": 5})
    assert sandbox.api.get("/connectors/Spotler_Contacts", params=ALL).content != first
    counts = sandbox.control.post("/reset", json={"contacts": 12, "seed": 4, "edge_cases": False}).json()
    assert counts["contacts"] == 12
    assert len(sandbox.rows()) == 12
    assert sandbox.control.post("/reset", json={"contacts": "many"}).status_code == 400


def test_inspect_contact_person_and_organisation(sandbox: Sandbox) -> None:
    row = next(r for r in sandbox.rows() if r["PersonNo"] and r["OrganisationId"])
    contact = sandbox.control.get(f"/contacts/{row['ContactId']}").json()
    assert {k: contact[k] for k in row} == row
    assert (contact["CdId"], contact["ViKc"]) == (row["ContactId"], "PRS")
    assert (contact["BcCoOga"], contact["BcCoPer"]) == (row["OrganisationId"], row["PersonNo"])
    assert contact["fields"][EMAIL_BOUNCED] is False  # a free field that is no GetConnector column
    person = sandbox.control.get(f"/persons/{row['PersonNo']}").json()
    assert person["fields"]["LaNm"] == row["LastName"]
    assert row["ContactId"] in person["contacts"]
    assert person["modified_afas"] == row["PersonModified"]
    org = sandbox.control.get(f"/organisations/{row['OrganisationId']}").json()
    assert org["fields"]["Nm"] == row["OrganisationName"]
    assert org["address"]["Rs"] == row["City"]
    for path in ("/contacts/999999", "/contacts/abc", "/persons/nobody", "/organisations/none"):
        assert sandbox.control.get(path).status_code == 404


def test_edit_inside_afas_bumps_that_entity_only(sandbox: Sandbox) -> None:
    row = next(r for r in sandbox.rows() if r["PersonNo"] and r["OrganisationId"])
    sandbox.control.post("/clock", json={"now": "2024-09-02T10:00:00+02:00"})
    edit = {"entity": "contact", "id": row["ContactId"], "fields": {"EmAd": "nieuw@example.nl", NEWSLETTER: "0"}}
    shown = sandbox.control.post("/edit", json=edit).json()
    assert (shown["Email"], shown["Newsletter"], shown["ContactModified"]) == (
        "nieuw@example.nl",
        False,
        "2024-09-02T10:00:00Z",
    )
    sandbox.control.post("/clock", json={"now": "2024-09-02T11:00:00+02:00"})
    edit = {"entity": "organisation", "id": row["OrganisationId"], "fields": {"Nm": "Andere Naam", "Rs": "Zwolle"}}
    assert sandbox.control.post("/edit", json=edit).status_code == 200
    sandbox.control.post("/clock", json={"now": "2024-09-02T12:00:00+02:00"})
    edit = {"entity": "person", "id": row["PersonNo"], "fields": {"FiNm": "Anaïs"}}
    assert sandbox.control.post("/edit", json=edit).status_code == 200
    after = next(r for r in sandbox.rows() if r["ContactId"] == row["ContactId"])
    assert (after["OrganisationName"], after["City"], after["FirstName"]) == ("Andere Naam", "Zwolle", "Anaïs")
    assert after["ContactModified"] == "2024-09-02T10:00:00Z"
    assert after["OrganisationModified"] == "2024-09-02T11:00:00Z"
    assert after["PersonModified"] == "2024-09-02T12:00:00Z"
    bad = {"entity": "contact", "id": row["ContactId"], "fields": {"Bl": "perhaps"}}
    assert sandbox.control.post("/edit", json=bad).status_code == 400
    keys = {"entity": "organisation", "id": row["OrganisationId"], "fields": {"BcCo": "1"}}
    assert sandbox.control.post("/edit", json=keys).status_code == 400
    missing = {"entity": "person", "id": "0", "fields": {"FiNm": "X"}}
    assert sandbox.control.post("/edit", json=missing).status_code == 404


def test_replace_rename_and_remove_getconnector_columns(sandbox: Sandbox) -> None:
    definition = sandbox.control.get("/getconnector/Spotler_Contacts").json()["definition"]
    columns = definition["columns"]
    renamed = [dict(c, id="Nieuwsbrief") if c["id"] == "Newsletter" else c for c in columns]
    renamed = [dict(c, dataType="string") if c["id"] == "ProductNews" else c for c in renamed]
    renamed = [c for c in renamed if c["id"] != "PersonNo"]
    assert sandbox.control.put("/getconnector/Spotler_Contacts", json={"columns": renamed}).status_code == 200
    rows = sandbox.rows()
    assert "Newsletter" not in rows[0]
    assert "PersonNo" not in rows[0]
    assert all(isinstance(r["Nieuwsbrief"], bool) for r in rows)
    assert {r["ProductNews"] for r in rows} <= {"Ja", "Nee"}
    meta = sandbox.api.get("/metainfo/get/Spotler_Contacts").json()["fields"]
    assert {f["id"]: f["dataType"] for f in meta}["ProductNews"] == "string"
    extra = {
        "description": "Alleen namen",
        "columns": [
            {"id": "Id", "source": "contact.CdId"},
            {"id": "Naam", "source": "person.@fullname"},
        ],
        "contact_types": ["PRS"],
    }
    assert sandbox.control.put("/getconnector/Namen", json=extra).status_code == 200
    names = sandbox.rows("Namen", order="Id")
    assert names
    assert all(set(r) == {"Id", "Naam"} for r in names)
    assert "Namen" in [c["id"] for c in sandbox.api.get("/metainfo").json()["getConnectors"]]
    invalid = {"columns": [{"id": "X", "source": "person.Nonsense"}]}
    assert sandbox.control.put("/getconnector/Namen", json=invalid).status_code == 400
    assert sandbox.control.delete("/getconnector/Namen").status_code == 204
    assert sandbox.control.delete("/getconnector/Namen").status_code == 404
    assert sandbox.api.get("/connectors/Namen").status_code == 500


def test_token_grants_and_a_custom_token(sandbox: Sandbox) -> None:
    grant = {"getConnectors": ["Profit_Contacts"], "updateConnectors": ["KnContact"]}
    shown = sandbox.control.put("/token", json=grant).json()
    assert shown["getConnectors"] == ["Profit_Contacts"]
    meta = sandbox.api.get("/metainfo").json()
    assert [c["id"] for c in meta["getConnectors"]] == ["Profit_Contacts"]
    denied = sandbox.api.get("/connectors/Spotler_Contacts")
    assert denied.status_code == 500
    assert "not supported" in denied.json()["externalMessage"]
    assert sandbox.api.get("/metainfo/get/Spotler_Contacts").status_code == 500
    assert sandbox.api.get("/metainfo/update/KnPerson").status_code == 500
    other = "<token><version>1</version><data>" + "AB" * 32 + "</data></token>"
    assert sandbox.control.put("/token", json={"token": other}).status_code == 200
    assert sandbox.api.get("/metainfo").status_code == 401
    assert sandbox.api.get("/metainfo", headers=auth_header(other)).status_code == 200
    assert other not in sandbox.control.get("/token").text


def test_faults_and_request_accounting(sandbox: Sandbox) -> None:
    assert sandbox.control.delete("/requests").status_code == 204
    sandbox.rows()
    sandbox.api.get("/metainfo")
    stats = sandbox.control.get("/requests").json()
    assert stats["routes"] == {"GET /connectors/Spotler_Contacts": 1, "GET /metainfo": 1}
    log = sandbox.control.get("/requests/log", params={"since": 0}).json()
    assert [(r["method"], r["route"], r["status"]) for r in log] == [
        ("GET", "GET /connectors/Spotler_Contacts", 200),
        ("GET", "GET /metainfo", 200),
    ]
    assert sandbox.control.get("/requests/log", params={"since": log[-1]["at"] + 1}).json() == []
    faults = sandbox.control.put("/faults", json={"error_rate": 1.0}).json()
    assert faults["error_rate"] == 1.0
    assert sandbox.control.get("/faults").json()["error_rate"] == 1.0
    assert sandbox.api.get("/metainfo").status_code == 500
    assert sandbox.control.put("/faults", json={"error_rate": "lots"}).status_code == 400
    sandbox.control.post("/reset", json={"contacts": 5, "seed": 1})
    assert sandbox.control.get("/faults").json()["error_rate"] == 0.0
    assert sandbox.control.get("/requests").json()["total"] == 0


def test_summary(sandbox: Sandbox) -> None:
    summary = sandbox.control.get("/summary").json()
    assert summary["contacts"] == 50
    assert summary["getConnectors"] == ["Spotler_Contacts", "Profit_Contacts"]


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/ProfitRestServices/connectors/Spotler_Contacts", "GET /connectors/Spotler_Contacts"),
        ("PUT", "/profitrestservices/connectors/kncontact", "PUT /connectors/KnContact"),
        (
            "POST",
            "/ProfitRestServices/connectors/KnOrganisation/KnContact",
            "POST /connectors/KnOrganisation/KnContact",
        ),
        ("GET", "/ProfitRestServices/MetaInfo", "GET /metainfo"),
        ("GET", "/ProfitRestServices/Metainfo/Get/Spotler_Contacts", "GET /metainfo/get/Spotler_Contacts"),
        ("GET", "/elsewhere", "GET /elsewhere"),
    ],
)
def test_route_names(method: str, path: str, route: str) -> None:
    assert route_of(method, path) == route
