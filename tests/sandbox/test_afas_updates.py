"""UpdateConnectors over HTTP: what changes, which timestamp moves, what is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox.afas.app import AfasSandbox
from connector.sandbox.afas.catalogue import CUSTOMER_TYPE, NEWSLETTER, PRODUCT_NEWS
from connector.sandbox.afas.testing import auth_header, running_sandbox

Row = dict[str, Any]


class Afas:
    """A client for one test's sandbox, plus its control API."""

    def __init__(self, url: str, app: AfasSandbox) -> None:
        self.api = httpx.Client(base_url=f"{url}/ProfitRestServices", headers=auth_header(), timeout=30)
        self.control = httpx.Client(base_url=f"{url}/_sandbox", timeout=30)
        self.app = app

    def row(self, contact_id: int) -> Row:
        params = {"filterfieldids": "ContactId", "filtervalues": str(contact_id), "operatortypes": "1"}
        rows = self.api.get("/connectors/Spotler_Contacts", params=params).json()["rows"]
        assert len(rows) == 1
        return dict(rows[0])

    def rows(self) -> list[Row]:
        params = {"skip": -1, "take": -1, "orderbyfieldids": "ContactId"}
        return list(self.api.get("/connectors/Spotler_Contacts", params=params).json()["rows"])

    def clock(self, now: str) -> None:
        assert self.control.post("/clock", json={"now": now}).status_code == 200

    def put(self, connector: str, body: Any) -> httpx.Response:
        return self.api.put(f"/connectors/{connector}", json=body)

    def post(self, connector: str, body: Any) -> httpx.Response:
        return self.api.post(f"/connectors/{connector}", json=body)


@pytest.fixture
def afas() -> Iterator[Afas]:
    with running_sandbox(contacts=60, seed=11) as (server, app):
        client = Afas(server.url, app)
        client.clock("2024-06-01T12:00:00+02:00")
        yield client


def element(connector: str, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {connector: {"Element": {"Fields": fields, **extra}}}


def a_prs_row(afas: Afas, *, skip: int = 0) -> Row:
    rows = [r for r in afas.rows() if r["PersonNo"] and r["OrganisationId"] and r["Email"]]
    return rows[skip]


def assert_afas_error(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 500, response.text
    body = response.json()
    assert set(body) == {"externalMessage", "errorNumber", "profitLogReference"}
    assert fragment.lower() in body["externalMessage"].lower()
    assert len(body["profitLogReference"]) == 32
    assert body["profitLogReference"].isalnum()


def test_put_kncontact_by_organisation_and_person_bumps_only_the_contact(afas: Afas) -> None:
    row = a_prs_row(afas)
    afas.clock("2024-06-02T09:15:30+02:00")
    fields = {"BcCoOga": row["OrganisationId"], "BcCoPer": row["PersonNo"], NEWSLETTER: not row["Newsletter"]}
    response = afas.put("KnContact", element("KnContact", fields))
    assert response.status_code == 201
    after = afas.row(row["ContactId"])
    assert after["Newsletter"] is (not row["Newsletter"])
    assert after["ContactModified"] == "2024-06-02T09:15:30Z"
    assert after["PersonModified"] == row["PersonModified"]
    assert after["OrganisationModified"] == row["OrganisationModified"]


def test_put_kncontact_by_cdid_and_type_and_any_boolean_spelling(afas: Afas) -> None:
    row = a_prs_row(afas)
    for value, expected in (("1", True), (0, False), (True, True), ("false", False)):
        fields = {"CdId": row["ContactId"], "ViKc": "PRS", PRODUCT_NEWS: value, "Bl": value}
        assert afas.put("KnContact", element("KnContact", fields)).status_code == 201
        after = afas.row(row["ContactId"])
        assert (after["ProductNews"], after["Blocked"]) == (expected, expected)
    wrong_type = {"CdId": row["ContactId"], "ViKc": "AFD", PRODUCT_NEWS: True}
    assert_afas_error(afas.put("KnContact", element("KnContact", wrong_type)), "does not match")


def test_a_write_that_changes_nothing_still_stamps_the_entity(afas: Afas) -> None:
    row = a_prs_row(afas)
    afas.clock("2024-06-03T10:00:00+02:00")
    fields = {"CdId": row["ContactId"], "EmAd": row["Email"]}
    assert afas.put("KnContact", element("KnContact", fields)).status_code == 201
    assert afas.row(row["ContactId"])["ContactModified"] == "2024-06-03T10:00:00Z"
    # A key-only element merely references its entity: nothing moves.
    afas.clock("2024-06-04T10:00:00+02:00")
    keys_only = {"MatchPer": "0", "BcCo": row["PersonNo"]}
    assert afas.put("KnPerson", element("KnPerson", keys_only)).status_code == 201
    assert afas.row(row["ContactId"])["PersonModified"] == row["PersonModified"]


def test_put_knperson_changes_every_contact_of_that_person(afas: Afas) -> None:
    row = a_prs_row(afas)
    afas.clock("2024-06-05T08:00:00+02:00")
    body = element("KnPerson", {"MatchPer": "0", "BcCo": row["PersonNo"], "FiNm": "Gerrit", "Is": ""})
    response = afas.put("KnPerson", body)
    assert response.status_code == 201
    result = response.json()["results"]["KnPerson"]
    assert result["BcCo"] == row["PersonNo"]
    assert isinstance(result["BcId"], int)
    after = afas.row(row["ContactId"])
    assert (after["FirstName"], after["Prefix"]) == ("Gerrit", None)
    assert after["PersonModified"] == "2024-06-05T08:00:00Z"
    assert after["ContactModified"] == row["ContactModified"]
    person = afas.control.get(f"/persons/{row['PersonNo']}").json()
    for contact_id in person["contacts"]:
        assert afas.control.get(f"/contacts/{contact_id}").json()["FirstName"] == "Gerrit"


def test_put_knorganisation_free_field_bumps_the_organisation(afas: Afas) -> None:
    row = a_prs_row(afas)
    afas.clock("2024-06-06T07:00:00+02:00")
    body = element("KnOrganisation", {"MatchOga": "0", "BcCo": row["OrganisationId"], CUSTOMER_TYPE: "Partner"})
    response = afas.put("KnOrganisation", body)
    assert response.status_code == 201
    assert response.json() == {
        "results": {
            "KnOrganisation": {
                "BcCo": row["OrganisationId"],
                "BcId": response.json()["results"]["KnOrganisation"]["BcId"],
            }
        }
    }
    colleagues = [r for r in afas.rows() if r["OrganisationId"] == row["OrganisationId"]]
    assert colleagues
    assert all(r["CustomerType"] == "Partner" for r in colleagues)
    assert all(r["OrganisationModified"] == "2024-06-06T07:00:00Z" for r in colleagues)
    assert afas.row(row["ContactId"])["ContactModified"] == row["ContactModified"]


@pytest.mark.parametrize("shape", ["objects-as-object", "objects-as-array"])
def test_nested_knorganisation_updates_contact_and_person(afas: Afas, shape: str) -> None:
    row = a_prs_row(afas, skip=1)
    afas.clock("2024-06-07T16:45:00+02:00")
    person = {"KnPerson": {"Element": {"Fields": {"MatchPer": "0", "BcCo": row["PersonNo"], "LaNm": "Nieuwenhuis"}}}}
    contact = {"KnContact": {"Element": {"Fields": {"ViKc": "PRS", "TeNr": "020-7654321"}, "Objects": [person]}}}
    objects: Any = contact if shape == "objects-as-object" else [contact]
    body = {
        "KnOrganisation": {
            "Element": [{"Fields": {"MatchOga": "0", "BcCo": row["OrganisationId"]}, "Objects": objects}]
        }
    }
    response = afas.put("KnOrganisation", body)
    assert response.status_code == 201, response.text
    after = afas.row(row["ContactId"])
    assert (after["LastName"], after["Phone"]) == ("Nieuwenhuis", "020-7654321")
    assert after["ContactModified"] == after["PersonModified"] == "2024-06-07T16:45:00Z"
    assert after["OrganisationModified"] == row["OrganisationModified"]  # referenced, not written


def test_post_knorganisation_kncontact_adds_a_contact(afas: Afas) -> None:
    row = a_prs_row(afas)
    other = next(r for r in afas.rows() if r["OrganisationId"] not in (None, row["OrganisationId"]))
    before = {r["ContactId"] for r in afas.rows()}
    body = {
        "KnOrganisation": {
            "Element": {
                "Fields": {"MatchOga": "0", "BcCo": other["OrganisationId"]},
                "Objects": [
                    {
                        "KnContact": {
                            "Element": {
                                "Fields": {"ViKc": "PRS", "EmAd": "tweede.baan@example.com", NEWSLETTER: True},
                                "Objects": [
                                    {"KnPerson": {"Element": {"Fields": {"MatchPer": "0", "BcCo": row["PersonNo"]}}}}
                                ],
                            }
                        }
                    }
                ],
            }
        }
    }
    response = afas.post("KnOrganisation/KnContact", body)
    assert response.status_code == 201, response.text
    new = [r for r in afas.rows() if r["ContactId"] not in before]
    assert len(new) == 1
    assert (new[0]["PersonNo"], new[0]["OrganisationId"]) == (row["PersonNo"], other["OrganisationId"])
    assert (new[0]["Email"], new[0]["Newsletter"]) == ("tweede.baan@example.com", True)
    again = afas.post("KnOrganisation/KnContact", body)
    assert_afas_error(again, "already a contact")


def test_post_knorganisation_inserts_with_autonumbering(afas: Afas) -> None:
    body = element(
        "KnOrganisation",
        {"PadAdr": True, "AutoNum": True, "MatchOga": "6", "Nm": "Nieuwe Klant B.V.", "ViLb": "1000"},
        Objects={
            "KnBasicAddressAdr": {
                "Element": {"Fields": {"CoId": "NL", "Ad": "Dam", "HmNr": "1", "ZpCd": "1012 JS", "Rs": "Amsterdam"}}
            }
        },
    )
    response = afas.post("KnOrganisation", body)
    assert response.status_code == 201
    number = response.json()["results"]["KnOrganisation"]["BcCo"]
    org = afas.control.get(f"/organisations/{number}").json()
    assert org["fields"]["Nm"] == "Nieuwe Klant B.V."
    assert org["address"]["HmNr"] == 1
    duplicate = element("KnOrganisation", {"AutoNum": False, "BcCo": number, "Nm": "Dubbel"})
    assert_afas_error(afas.post("KnOrganisation", duplicate), "already exists")
    no_number = element("KnOrganisation", {"AutoNum": False, "Nm": "Zonder nummer"})
    assert_afas_error(afas.post("KnOrganisation", no_number), "mandatory")
    no_name = element("KnOrganisation", {"AutoNum": True})
    assert_afas_error(afas.post("KnOrganisation", no_name), "'Nm'")


def test_validation_errors_change_nothing(afas: Afas) -> None:
    row = a_prs_row(afas)
    snapshot = afas.rows()
    cases = [
        ("KnContact", {"CdId": row["ContactId"], "Nonsense": "x"}, "does not exist in object"),
        ("KnContact", {"CdId": 999_999, "EmAd": "a@example.com"}, "does not exist"),
        ("KnContact", {"BcCoOga": "42", "BcCoPer": row["PersonNo"]}, "does not exist"),
        ("KnContact", {"CdId": row["ContactId"], "Bl": "misschien"}, "yes/no"),
        ("KnContact", {"CdId": row["ContactId"], "EmAd": "geen-adres"}, "e-mail"),
        ("KnContact", {"EmAd": "a@example.com"}, "mandatory"),
        ("KnPerson", {"MatchPer": "0", "BcCo": "424242", "FiNm": "X"}, "does not exist"),
        ("KnPerson", {"MatchPer": "0", "BcCo": row["PersonNo"], "LaNm": "x" * 81}, "too long"),
        ("KnPerson", {"MatchPer": "0", "BcCo": row["PersonNo"], "ViGe": "Q"}, "code table"),
        ("KnPerson", {"MatchPer": "0", "BcCo": row["PersonNo"], "DaBi": "morgen"}, "date"),
        ("KnOrganisation", {"MatchOga": "0", "BcCo": row["OrganisationId"], "ViLb": "9999"}, "code table"),
        ("KnOrganisation", {"MatchOga": "0", "BcCo": row["OrganisationId"], "BcId": "abc"}, "whole number"),
    ]
    for connector, fields, fragment in cases:
        assert_afas_error(afas.put(connector, element(connector, fields)), fragment)
    # One bad element spoils the whole call: the good one before it is rolled back.
    body = {
        "KnPerson": {
            "Element": [
                {"Fields": {"MatchPer": "0", "BcCo": row["PersonNo"], "FiNm": "Eerst"}},
                {"Fields": {"MatchPer": "0", "BcCo": "424242", "FiNm": "Dan"}},
            ]
        }
    }
    assert_afas_error(afas.put("KnPerson", body), "does not exist")
    assert afas.rows() == snapshot


def test_sub_objects_must_belong_to_their_object(afas: Afas) -> None:
    row = a_prs_row(afas)
    person = {"KnPerson": {"Element": {"Fields": {"MatchPer": "0", "BcCo": row["PersonNo"], "FiNm": "X"}}}}
    body = element("KnOrganisation", {"MatchOga": "0", "BcCo": row["OrganisationId"]}, Objects=[person])
    assert_afas_error(afas.put("KnOrganisation", body), "not a sub-object")
    assert afas.row(row["ContactId"])["FirstName"] == row["FirstName"]
    assert_afas_error(afas.post("KnOrganisation/KnPerson", body), "not a sub-object")


def test_empty_string_clears_a_field(afas: Afas) -> None:
    row = next(r for r in afas.rows() if r["Phone"] and r["PersonNo"])
    assert afas.put("KnContact", element("KnContact", {"CdId": row["ContactId"], "TeNr": ""})).status_code == 201
    assert afas.row(row["ContactId"])["Phone"] is None


def test_department_and_private_contacts_can_be_found(afas: Afas) -> None:
    afd = next(r for r in afas.rows() if r["PersonNo"] is None)
    state = afas.control.get(f"/contacts/{afd['ContactId']}").json()
    fields = {"BcCoOga": afd["OrganisationId"], "ExAd": state["fields"]["ExAd"], "TeNr": "010-1111111"}
    assert afas.put("KnContact", element("KnContact", fields)).status_code == 201
    assert afas.row(afd["ContactId"])["Phone"] == "010-1111111"
    per = next(r for r in afas.rows() if r["OrganisationId"] is None)
    fields = {"BcCoPer": per["PersonNo"], "Bl": True}
    assert afas.put("KnContact", element("KnContact", fields)).status_code == 201
    assert afas.row(per["ContactId"])["Blocked"] is True


def test_what_profit_does_not_allow(afas: Afas) -> None:
    row = a_prs_row(afas)
    assert_afas_error(afas.post("KnContact", element("KnContact", {"CdId": row["ContactId"]})), "PUT")
    deleted = afas.api.delete(f"/connectors/KnContact/KnContact/@CdId/{row['ContactId']}")
    assert_afas_error(deleted, "not supported")
    assert afas.row(row["ContactId"])["ContactId"] == row["ContactId"]
    action_delete = element("KnContact", {"CdId": row["ContactId"], "@Action": "delete"})
    assert_afas_error(afas.put("KnContact", action_delete), "not supported")
    assert_afas_error(afas.put("KnSubject", element("KnSubject", {"SbId": 1})), "not supported")
    assert_afas_error(afas.put("KnContact", {"KnPerson": {"Element": {"Fields": {}}}}), "KnContact")
    bad_json = afas.api.put("/connectors/KnContact", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (bad_json.status_code, bad_json.json()) == (400, {"message": "Invalid json"})


def test_update_connectors_the_token_lacks_are_refused(afas: Afas) -> None:
    row = a_prs_row(afas)
    assert afas.control.put("/token", json={"updateConnectors": ["KnContact"]}).status_code == 200
    body = element("KnPerson", {"MatchPer": "0", "BcCo": row["PersonNo"], "FiNm": "Nee"})
    assert_afas_error(afas.put("KnPerson", body), "not supported")
    assert afas.put("KnContact", element("KnContact", {"CdId": row["ContactId"], "TeNr": "1"})).status_code == 201
    listed = afas.api.get("/metainfo").json()["updateConnectors"]
    assert [c["id"] for c in listed] == ["KnContact"]


def test_the_control_view_lists_when_api_writes_changed_a_row_and_not_inside_afas_edits(afas: Afas) -> None:
    row = a_prs_row(afas)
    cid = row["ContactId"]
    assert afas.control.get(f"/contacts/{cid}").json()["apiChanges"] == []
    edit = {"entity": "contact", "id": cid, "fields": {"EmAd": "binnen@example.nl"}}
    assert afas.control.post("/edit", json=edit).status_code == 200
    assert afas.control.get(f"/contacts/{cid}").json()["apiChanges"] == []  # an edit inside AFAS is no API write
    fields = {"BcCoOga": row["OrganisationId"], "BcCoPer": row["PersonNo"], NEWSLETTER: not row["Newsletter"]}
    before = time.time() * 1000
    assert afas.put("KnContact", element("KnContact", fields)).status_code == 201
    (written,) = afas.control.get(f"/contacts/{cid}").json()["apiChanges"]
    assert before <= written <= time.time() * 1000  # wall-clock ms, whatever the sandbox clock says
