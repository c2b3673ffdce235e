"""The vendor OpenAPI file is the contract: response shapes, and its own request examples."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.testing import auth_header, running_sandbox

# AFAS's own OpenAPI description of the CRM connectors (spec 6.6.9), kept beside the tests.
SPEC_PATH = Path(__file__).resolve().parent / "specs" / "afas-profit-crm.openapi-3.0.json"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return dict(json.loads(SPEC_PATH.read_text()))


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def to_json_schema(node: Any, *, all_nullable: bool = False) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: ``nullable`` becomes a null type; examples dropped."""
    if isinstance(node, list):
        return [to_json_schema(n, all_nullable=all_nullable) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, all_nullable=all_nullable) for k, v in node.items() if k not in ("example", "nullable")}
    if "type" in node and (node.get("nullable") or all_nullable) and node["type"] != "object":
        out["type"] = [node["type"], "null"]
    return out


def response_schema(
    spec: dict[str, Any], path: str, status: str, *, method: str = "get", rows_nullable: bool = False
) -> Any:
    response = resolve(spec, spec["paths"][path][method]["responses"][status])
    schema = response["content"]["application/json"]["schema"]
    if rows_nullable:
        # Profit renders every empty value as null (reference §3.2), nullable or not in the file.
        rows = schema["properties"]["rows"]
        return to_json_schema(
            {
                **schema,
                "properties": {
                    **schema["properties"],
                    "rows": {**rows, "items": to_json_schema(rows["items"], all_nullable=True)},
                },
            }
        )
    return to_json_schema(schema)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_sandbox(contacts=120, seed=9) as (server, _app):
        yield server.url


@pytest.fixture(scope="module")
def afas(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{base}/ProfitRestServices", headers=auth_header(), timeout=30) as client:
        yield client


def test_getconnector_responses_match_the_spec(spec: dict[str, Any], afas: httpx.Client) -> None:
    generic = response_schema(spec, "/connectors/{Endpoint}", "200")
    profit = response_schema(spec, "/connectors/Profit_Contacts", "200", rows_nullable=True)
    for connector, schema in (("Spotler_Contacts", generic), ("Profit_Contacts", profit)):
        body = afas.get(f"/connectors/{connector}", params={"skip": -1, "take": -1}).json()
        jsonschema.validate(body, schema)
        assert len(body["rows"]) >= 120
    profit_columns = set(
        resolve(spec, spec["paths"]["/connectors/Profit_Contacts"]["get"]["responses"]["200"])["content"][
            "application/json"
        ]["schema"]["properties"]["rows"]["items"]["properties"]
    )
    row = afas.get("/connectors/Profit_Contacts", params={"take": 1}).json()["rows"][0]
    assert set(row) == profit_columns


def test_metainfo_responses_match_the_spec(spec: dict[str, Any], afas: httpx.Client) -> None:
    jsonschema.validate(afas.get("/metainfo").json(), response_schema(spec, "/MetaInfo", "200"))
    per_connector = response_schema(spec, "/Metainfo/{Type}/{Endpoint}", "200")
    for path in (
        "/metainfo/get/Spotler_Contacts",
        "/metainfo/get/Profit_Contacts",
        "/metainfo/update/KnContact",
        "/metainfo/update/KnPerson",
        "/metainfo/update/KnOrganisation",
    ):
        jsonschema.validate(afas.get(path).json(), per_connector)
    assert afas.get("/profitversion").json()["version"]


def test_metainfo_describes_the_spotler_connector_and_free_fields(afas: httpx.Client) -> None:
    fields = {f["id"]: f for f in afas.get("/metainfo/get/Spotler_Contacts").json()["fields"]}
    assert fields["ContactId"]["dataType"] == "int"
    assert {fields[k]["dataType"] for k in ("Newsletter", "ProductNews", "Blocked")} == {"boolean"}
    assert {fields[k]["dataType"] for k in ("ContactModified", "PersonModified", "OrganisationModified")} == {"date"}
    assert set(fields) >= {"PersonNo", "OrganisationId", "Email", "Sector", "CustomerType", "City"}
    for field in fields.values():
        assert set(field) == {
            "id",
            "fieldId",
            "dataType",
            "label",
            "length",
            "controlType",
            "decimals",
            "decimalsFieldId",
        }
    contact = afas.get("/metainfo/update/KnContact").json()
    codes = {f["fieldId"]: f for f in contact["fields"]}
    for code in (
        "U74BB4FF508DD36A73F8DF61FDBBB8754",
        "U91C07B23753D2AA3F9BCF2F639094D04",
        "U3E3988960B40ED53A073B30748E1CD6D",
    ):
        assert codes[code]["dataType"] == "boolean"
    assert codes["U3E3988960B40ED53A073B30748E1CD6D"]["label"] == "E-mail gebounced"
    assert set(codes["Bl"]) == {
        "fieldId",
        "primaryKey",
        "dataType",
        "label",
        "mandatory",
        "length",
        "decimals",
        "decimalFieldId",
        "notzero",
        "controlType",
        "values",
    }
    assert {o["name"] for o in contact["objects"]} >= {"KnBasicAddressAdr", "KnPerson"}
    org = {f["fieldId"]: f for f in afas.get("/metainfo/update/KnOrganisation").json()["fields"]}
    assert org["UCC690F77030D0AD3D3D411F648A10379"]["dataType"] == "string"
    assert {"id": "1000", "description": "Computer en informatietechnologie"} in org["ViLb"]["values"]


def test_every_spec_field_is_in_the_catalogue(spec: dict[str, Any], afas: httpx.Client) -> None:
    schemas = spec["components"]["schemas"]
    for connector in ("KnOrganisation", "KnPerson", "KnContact"):
        meta = {f["fieldId"]: f for f in afas.get(f"/metainfo/update/{connector}").json()["fields"]}
        for name in (f"{connector}_PUT", f"{connector}_POST"):
            if name not in schemas:
                continue
            element = schemas[name]["properties"][connector]["properties"]["Element"]
            for code, prop in element["properties"]["Fields"]["properties"].items():
                assert code in meta, (connector, code)
                expected = {"integer": "int", "boolean": "boolean"}.get(prop["type"])
                if expected:
                    assert meta[code]["dataType"] == expected, (connector, code)


def test_error_bodies_match_the_spec(spec: dict[str, Any], afas: httpx.Client, base: str) -> None:
    error = response_schema(spec, "/connectors/KnContact", "500", method="put")
    failed = afas.put("/connectors/KnContact", json={"KnContact": {"Element": {"Fields": {"CdId": 0}}}})
    assert failed.status_code == 500
    jsonschema.validate(failed.json(), {**error, "required": ["externalMessage", "errorNumber", "profitLogReference"]})
    httpx.put(f"{base}/_sandbox/faults", json={"maintenance": True, "maintenance_retry_after_s": 60})
    try:
        down = afas.get("/connectors/Spotler_Contacts")
        assert down.status_code == 503
        jsonschema.validate(down.json(), response_schema(spec, "/connectors/KnContact", "503", method="put"))
    finally:
        httpx.put(f"{base}/_sandbox/faults", json={})


def _examples(spec: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    found = []
    for path, item in spec["paths"].items():
        if not path.startswith(("/connectors/KnOrganisation", "/connectors/KnPerson", "/connectors/KnContact")):
            continue
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            for name, example in content.get("examples", {}).items():
                found.append((method.upper(), path, name, example["value"]))
    return found


def _walk(name: str, node: Any, found: dict[str, set[str]]) -> None:
    """Collect the organisation and person numbers an example refers to."""
    elements = node["Element"] if isinstance(node["Element"], list) else [node["Element"]]
    for element in elements:
        fields = element.get("Fields", {})
        if name in ("KnOrganisation", "KnPerson") and "BcCo" in fields:
            found["org" if name == "KnOrganisation" else "person"].add(str(fields["BcCo"]))
        for key, kind in (("BcCoOga", "org"), ("BcCoPer", "person")):
            if key in fields:
                found[kind].add(str(fields[key]))
        objects = element.get("Objects", [])
        for holder in objects if isinstance(objects, list) else [objects]:
            for child, child_node in holder.items():
                _walk(child, child_node, found)


def _prepare(afas: httpx.Client, body: Any) -> None:
    """Create what an example expects to exist, through the API itself."""
    refs: dict[str, set[str]] = {"org": set(), "person": set()}
    root = next(iter(body))
    _walk(root, body[root], refs)
    for number in sorted(refs["org"]):
        fields = {"AutoNum": False, "MatchOga": "6", "BcCo": number, "Nm": f"Organisatie {number}"}
        assert (
            afas.post(
                "/connectors/KnOrganisation", json={"KnOrganisation": {"Element": {"Fields": fields}}}
            ).status_code
            == 201
        )
    for number in sorted(refs["person"]):
        fields = {"AutoNum": False, "MatchPer": "7", "BcCo": number, "LaNm": f"Persoon {number}"}
        assert afas.post("/connectors/KnPerson", json={"KnPerson": {"Element": {"Fields": fields}}}).status_code == 201
    if root != "KnContact":
        return
    fields = body["KnContact"]["Element"]["Fields"]
    contact: dict[str, Any] = {"Fields": {"ViKc": "PRS" if "BcCoPer" in fields else "AFD", "ExAd": fields.get("ExAd")}}
    if "BcCoPer" in fields:
        contact["Objects"] = [{"KnPerson": {"Element": {"Fields": {"MatchPer": "0", "BcCo": fields["BcCoPer"]}}}}]
    outer = {
        "KnOrganisation": {
            "Element": {
                "Fields": {"MatchOga": "0", "BcCo": fields["BcCoOga"]},
                "Objects": [{"KnContact": {"Element": contact}}],
            }
        }
    }
    assert afas.post("/connectors/KnOrganisation/KnContact", json=outer).status_code == 201


# What some examples must have done: (control path, expected fields of what it shows).
EFFECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "organisation name": ("/organisations/1000755", {"Nm": "Jansen"}),
    "change person details": ("/persons/1234568774", {"FiNm": "John William", "ViGe": "M"}),
    "new organisation with subobjects": ("/organisations/1000812", {"Nm": "Jansen", "SeNm": "ZOEKNAAM"}),
    "Update": ("/persons/1000130", {"EmAd": "john.doe@example.com", "FuDs": "Directeur"}),
    "Add existing person as contact": ("/persons/1000368", {"ViKc": "PRS", "FuDs": "Directeur"}),
}


def _shown(base: str, path: str) -> dict[str, Any]:
    """The entity a control path shows; for a person, the fields of its (last) contact."""
    shown = httpx.get(f"{base}/_sandbox{path}", timeout=30).json()
    if path.startswith("/persons/") and shown["contacts"]:
        shown = httpx.get(f"{base}/_sandbox/contacts/{shown['contacts'][-1]}", timeout=30).json()
    return dict(shown["fields"])


def test_the_spec_request_examples_are_accepted(spec: dict[str, Any], afas: httpx.Client, base: str) -> None:
    examples = _examples(spec)
    assert len(examples) >= 20
    for method, path, name, body in examples:
        httpx.post(f"{base}/_sandbox/reset", json={"contacts": 3, "seed": 1}, timeout=30)
        _prepare(afas, body)
        response = afas.request(method, path, json=body)
        assert response.status_code == 201, (method, path, name, response.text)
        if path != "/connectors/KnContact":
            assert "results" in response.json()
        if name in EFFECTS:
            path, expected = EFFECTS[name]
            fields = _shown(base, path)
            assert {k: fields.get(k) for k in expected} == expected, name
    assert set(EFFECTS) <= {name for _, _, name, _ in examples}
    httpx.post(f"{base}/_sandbox/reset", json={"contacts": 120, "seed": 9}, timeout=30)


def test_an_independent_client_with_requests(base: str) -> None:
    header = "AfasToken " + base64.b64encode(DEFAULT_TOKEN.encode("utf-8")).decode("ascii")
    session = requests.Session()
    session.headers["Authorization"] = header
    url = f"{base}/ProfitRestServices/connectors/Spotler_Contacts"
    everything = session.get(url + "?take=-1&skip=-1", timeout=30)  # afas-connector's default
    assert everything.status_code == 200
    rows = everything.json()["rows"]
    assert len(rows) >= 120
    target = next(r for r in rows if r["LastName"] and " " not in r["LastName"] and r["ContactModified"])
    # The day of the change: a displayed time is rounded, the stored one has milliseconds.
    since = target["ContactModified"][:10] + "T00:00:00"
    # Exactly the URL shape afas-connector 0.1.5 builds: take before skip, %2C / %3B, raw values.
    query = (
        f"?take=100&skip=0&orderbyfieldids=-ContactModified"
        f"&filterfieldids=ContactModified%2CLastName&filtervalues={since}%2C{target['LastName']}"
        f"&operatortypes=2%2C1"
    )
    page = session.get(url + query, timeout=30)
    assert page.status_code == 200, page.text
    assert target["ContactId"] in [r["ContactId"] for r in page.json()["rows"]]
    either = session.get(
        url + f"?take=-1&skip=-1&filterfieldids=ContactId%3BContactId&filtervalues=1%3B{target['ContactId']}"
        "&operatortypes=1%3B1",
        timeout=30,
    )
    assert sorted(r["ContactId"] for r in either.json()["rows"]) == sorted({1, target["ContactId"]})
    written = session.put(
        f"{base}/ProfitRestServices/connectors/KnContact",
        json={"KnContact": {"Element": {"Fields": {"CdId": target["ContactId"], "TeNr": "0301234567"}}}},
        timeout=30,
    )
    assert written.status_code == 201


@pytest.mark.parametrize(
    "header",
    [
        None,
        "AfasToken " + base64.b64encode(b"<token><version>1</version><data>00</data></token>").decode(),
        "AfasToken " + DEFAULT_TOKEN,  # not base64: refused
        "Bearer " + base64.b64encode(DEFAULT_TOKEN.encode()).decode(),
        "AfasToken !!!not-base64!!!",
    ],
)
def test_a_bad_or_missing_token_is_a_401_with_an_empty_body(base: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path in ("/connectors/Spotler_Contacts", "/metainfo", "/connectors/KnContact"):
        response = requests.get(f"{base}/ProfitRestServices{path}", headers=headers, timeout=30)
        assert response.status_code == 401
        assert response.content == b""
        assert response.headers["content-length"] == "0"
