"""The Spotler sandbox's contact endpoints over real HTTP: writes, reads, validation, bulk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from connector.sandbox.spotler.app import SpotlerApp
from connector.sandbox.spotler.testing import SignedClient

ON1 = {"bit": 1, "enabled": True}
ON2 = {"bit": 2, "enabled": True}


class Env(NamedTuple):
    app: SpotlerApp
    url: str
    api: SignedClient


@pytest.fixture
def env(running: tuple[SpotlerApp, str]) -> Iterator[Env]:
    app, url = running
    httpx.post(url + "/_sandbox/reset").raise_for_status()
    with SignedClient(url + "/integrationservice-1.1.0") as api:
        yield Env(app, url, api)


def upsert(env: Env, external_id: str, purge: bool = False, **properties: Any) -> httpx.Response:
    body = {"update": True, "purge": purge,
            "contact": {"externalId": external_id, "properties": properties}}
    return env.api.post("contact", body)


def get(env: Env, external_id: str) -> dict[str, Any]:
    response = env.api.get(f"contact/{external_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bits(contact: dict[str, Any]) -> dict[int, bool]:
    return {p["bit"]: p["enabled"] for p in contact["properties"]["permissions"]}


def assert_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"errorType": error_type, "message": message}


# --- single writes and reads ------------------------------------------------------


def test_insert_then_get_shows_non_empty_properties_and_described_permissions(env: Env) -> None:
    response = upsert(env, "1", email="jan@example.com", firstName="Jan", infix="",
                      permissions=[{"bit": 1, "enabled": True}])
    assert response.status_code == 204
    assert response.content == b""
    contact = get(env, "1")
    assert contact["externalId"] == "1"
    assert isinstance(contact["created"], int)
    assert contact["created"] == contact["lastChanged"]
    assert contact["created"] > 10**12  # epoch milliseconds
    assert contact["temporary"] is False
    assert contact["testGroup"] is False
    assert contact["encryptedId"]
    assert contact["channels"] == [{"name": "EMAIL", "value": True}]
    assert set(contact["properties"]) == {"email", "firstName", "permissions"}
    assert contact["properties"]["permissions"] == [
        {"bit": 1, "enabled": True, "description": "Nieuwsbrief"},
        {"bit": 2, "enabled": False, "description": "Productnieuws"},
    ]


def test_trailing_slash_and_unversioned_prefix_are_the_same_service(env: Env) -> None:
    body = {"update": False, "contact": {"externalId": "2"}}
    assert env.api.post("contact/", body).status_code == 204
    with SignedClient(env.url + "/integrationservice") as other:
        assert other.get("contact/2").json()["externalId"] == "2"


def test_insert_without_update_on_an_existing_contact_is_refused(env: Env) -> None:
    body = {"contact": {"externalId": "3"}}
    assert env.api.post("contact", body).status_code == 204
    again = env.api.post("contact", body)
    assert_error(again, 400, "CONTACT_ALREADY_EXISTS", "Contact already exists")


def test_get_and_put_of_an_unknown_contact_are_404(env: Env) -> None:
    assert_error(env.api.get("contact/nope"), 404, "CONTACT_NOT_FOUND", "Given contact not found")
    put = env.api.put("contact/nope", {"contact": {"externalId": "nope"}})
    assert_error(put, 404, "CONTACT_NOT_FOUND", "Given contact not found")


def test_put_merges_properties_and_permissions_per_bit(env: Env) -> None:
    upsert(env, "4", email="a@example.com", firstName="An",
           permissions=[{"bit": 1, "enabled": True}, {"bit": 2, "enabled": True}])
    body = {"purge": False, "contact": {"externalId": "4", "properties": {
        "lastName": "Bakker", "permissions": [{"bit": 1, "enabled": False}]}}}
    assert env.api.put("contact/4", body).status_code == 204
    contact = get(env, "4")
    assert contact["properties"]["firstName"] == "An"
    assert contact["properties"]["lastName"] == "Bakker"
    assert bits(contact) == {1: False, 2: True}


def test_purge_replaces_every_property(env: Env) -> None:
    upsert(env, "5", email="a@example.com", firstName="An", permissions=[ON2])
    assert upsert(env, "5", purge=True, city="Utrecht").status_code == 204
    contact = get(env, "5")
    scalars = {k: v for k, v in contact["properties"].items() if k != "permissions"}
    assert scalars == {"city": "Utrecht"}
    assert bits(contact) == {1: False, 2: False}
    assert contact["channels"] == [{"name": "EMAIL", "value": False}]


def test_empty_string_clears_and_null_is_ignored(env: Env) -> None:
    upsert(env, "6", email="a@example.com", firstName="An", city="Ede")
    upsert(env, "6", firstName="", city=None)
    assert get(env, "6")["properties"].keys() == {"email", "city", "permissions"}


def test_last_changed_moves_only_on_an_effective_change(env: Env) -> None:
    upsert(env, "7", email="a@example.com", permissions=[{"bit": 1, "enabled": True}])
    first = get(env, "7")["lastChanged"]
    upsert(env, "7", email="a@example.com", permissions=[{"bit": 1, "enabled": True}])
    env.api.put("contact/7", {"contact": {"externalId": "7", "properties": {"city": None}}})
    assert get(env, "7")["lastChanged"] == first
    upsert(env, "7", permissions=[{"bit": 1, "enabled": False}])
    assert get(env, "7")["lastChanged"] > first


def test_read_only_fields_and_nulls_in_requests_are_ignored(env: Env) -> None:
    contact = {
        "externalId": "8", "created": None, "lastChanged": "yesterday", "encryptedId": None,
        "temporary": None, "testGroup": True, "channels": [{"name": "EMAIL", "value": True}],
        "properties": {"email": "a@example.com", "lastName": None},
    }
    response = env.api.post("contact", {"update": True, "purge": None, "contact": contact})
    assert response.status_code == 204, response.text
    stored = get(env, "8")
    assert stored["testGroup"] is True
    assert stored["encryptedId"]
    assert "lastName" not in stored["properties"]


def test_put_with_a_different_body_id_is_refused(env: Env) -> None:
    upsert(env, "9")
    response = env.api.put("contact/9", {"contact": {"externalId": "10"}})
    assert_error(response, 400, "INVALID_PARAMS", "Path id doesn't match")


def test_numeric_external_id_and_string_booleans_are_coerced(env: Env) -> None:
    response = env.api.post("contact", {"update": "true", "contact": {"externalId": 11}})
    assert response.status_code == 204, response.text
    assert get(env, "11")["externalId"] == "11"


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"email": "jan@@example"}, "Email is invalid"),
        ({"email": "geen"}, "Email is invalid"),
        ({"shoeSize": "44"}, "Property is invalid"),
        ({"permissions": [{"bit": 4, "enabled": True}]}, "Property is invalid"),
        ({"permissions": [{"bit": 1}]}, "Property is invalid"),
        ({"permissions": True}, "Property is invalid"),
        ({"firstName": {"nested": 1}}, "Property is invalid"),
    ],
)
def test_invalid_properties_are_refused_and_nothing_is_written(
    env: Env, properties: dict[str, Any], message: str
) -> None:
    response = env.api.post("contact", {"update": True, "contact": {
        "externalId": "12", "properties": properties}})
    assert_error(response, 400, "INVALID_PROPERTY", message)
    assert env.app.state.store.get("12") is None


def test_anonymize_clears_personal_data_and_keeps_the_record(env: Env) -> None:
    upsert(env, "13", email="a@example.com", firstName="An", permissions=[ON1])
    before = get(env, "13")["lastChanged"]
    assert env.api.put("contact/anonymize/13").status_code == 204
    contact = get(env, "13")
    assert set(contact["properties"]) == {"permissions"}
    assert contact["channels"] == [{"name": "EMAIL", "value": False}]
    assert contact["lastChanged"] > before
    assert_error(env.api.put("contact/anonymize/nope"), 404, "CONTACT_NOT_FOUND",
                 "Given contact not found")


def test_inactivate_turns_the_email_channel_off(env: Env) -> None:
    upsert(env, "14", email="a@example.com")
    assert env.api.put("contact/inactivate/14").status_code == 204
    assert get(env, "14")["channels"] == [{"name": "EMAIL", "value": False}]


def test_there_is_no_delete(env: Env) -> None:
    upsert(env, "15")
    response = env.api.request("DELETE", "contact/15")
    assert response.status_code == 405
    assert response.json()["errorType"]
    assert env.app.state.store.get("15") is not None


def test_unknown_route_is_404_in_spotler_dialect(env: Env) -> None:
    response = env.api.get("mailing/list")
    assert response.status_code == 404
    assert set(response.json()) == {"errorType", "message"}


def test_malformed_body_is_400(env: Env) -> None:
    response = env.api.request("POST", "contact", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert env.api.post("contact", {"contact": None}).status_code == 400
    assert env.api.post("contact", {"update": True, "contact": {}}).status_code == 400


# --- properties and search --------------------------------------------------------


def test_properties_list_is_the_catalogue(env: Env) -> None:
    properties = env.api.get("contact/properties/list").json()
    by_name = {p["name"]: p for p in properties}
    assert by_name["email"]["type"] == "email"
    strings = ("firstName", "infix", "lastName", "organisation", "city", "sector", "customerType")
    for name in strings:
        assert by_name[name]["type"] == "string"
    assert by_name["permissions"]["type"] == "set"
    assert [(e["bit"], e["description"]) for e in by_name["permissions"]["entries"]] == [
        (1, "Nieuwsbrief"), (2, "Productnieuws")]


def test_search_by_email_is_case_insensitive_and_paged(env: Env) -> None:
    upsert(env, "20", email="Shared@Example.com")
    upsert(env, "21", email="shared@example.com")
    upsert(env, "22", email="other@example.com")
    query = {"MPSearchQuery": "email=shared@example.com", "pageSize": 1}
    first = env.api.get("contact/search", params=query).json()
    assert [c["externalId"] for c in first["contacts"]] == ["20"]
    assert first["paging"]["after"] == 1
    assert "after=1" in first["paging"]["next"]
    second = env.api.get("contact/search", params={**query, "after": 1}).json()
    assert [c["externalId"] for c in second["contacts"]] == ["21"]
    assert "next" not in second["paging"]


def test_search_errors(env: Env) -> None:
    assert env.api.get("contact/search", params={"MPSearchQuery": "nonsense"}).status_code == 400
    unknown = env.api.get("contact/search", params={"MPSearchQuery": "shoeSize=44"})
    assert_error(unknown, 400, "INVALID_PROPERTY", "Property is invalid")


# --- bulk -------------------------------------------------------------------------


def bulk(env: Env, contacts: list[dict[str, Any]], update: bool = True) -> httpx.Response:
    return env.api.post("contact/list", {"update": update, "purge": False, "contacts": contacts})


def test_bulk_results_per_contact_one_bad_contact_spoils_nothing(env: Env) -> None:
    upsert(env, "existing")
    contacts = [
        {"externalId": "b1", "properties": {"email": "b1@example.com"}},
        {"externalId": "b2", "properties": {"email": "not an email"}},
        {"externalId": "b3", "properties": {"colour": "red"}},
        {"externalId": "b4", "properties": {"permissions": [{"bit": 9, "enabled": True}]}},
        {"externalId": "existing", "properties": {"city": "Ede"}},
    ]
    response = bulk(env, contacts)
    assert response.status_code == 200, response.text
    codes = [(r["externalId"], r["code"]) for r in response.json()]
    assert codes == [("b1", "OK"), ("b2", "PROPERTY_INVALID"), ("b3", "PROPERTY_INVALID"),
                     ("b4", "PROPERTY_INVALID"), ("existing", "OK")]
    assert response.json()[1]["message"] == "Email is invalid"
    store = env.app.state.store
    assert store.get("b1") is not None
    assert store.get("b2") is None
    assert store.get("b3") is None
    assert store.get("b4") is None
    existing = store.get("existing")
    assert existing is not None
    assert existing.properties["city"] == "Ede"


def test_bulk_without_update_reports_existing_contacts(env: Env) -> None:
    upsert(env, "x1")
    response = bulk(env, [{"externalId": "x1"}, {"externalId": "x2"}], update=False)
    assert [r["code"] for r in response.json()] == ["CONTACT_ALREADY_EXISTS", "OK"]


def test_bulk_limits(env: Env) -> None:
    too_many = [{"externalId": str(i)} for i in range(101)]
    message = "Too many contacts provided (max is 100)"
    assert_error(bulk(env, too_many), 400, "INVALID_PARAMS", message)
    assert len(env.app.state.store) == 0
    missing = [{"externalId": "ok"}, {"properties": {"email": "a@example.com"}}]
    assert_error(bulk(env, missing), 400, "INVALID_PARAMS", "Contact without externalId found")
    assert env.app.state.store.get("ok") is None
    exactly = bulk(env, [{"externalId": str(i)} for i in range(100)])
    assert exactly.status_code == 200
    assert len(env.app.state.store) == 100


def test_the_control_view_lists_when_api_writes_changed_a_contact(env: Env) -> None:
    def changes() -> list[int]:
        view: dict[str, Any] = httpx.get(f"{env.url}/_sandbox/contacts/w1").json()
        return list(view["apiChanges"])

    assert upsert(env, "w1", email="w1@example.org").is_success
    assert changes() == []  # creating a contact overwrites nothing
    httpx.post(f"{env.url}/_sandbox/edit", json={"externalId": "w1", "properties": {"firstName": "Els"}})
    assert changes() == []  # a recipient's edit is no API write
    assert upsert(env, "w1", lastName="Berg").is_success
    assert upsert(env, "w1", lastName="Berg").is_success  # no effective change: not listed
    (written,) = changes()
    assert written == get(env, "w1")["lastChanged"]
