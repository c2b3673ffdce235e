"""Contract: the sandbox against Spotler's own Swagger 1.2 description of the contact resource.

A small converter turns the Swagger 1.2 models into JSON Schema (strict: no
undeclared fields). ``created``/``lastChanged``/bounce ``date`` are typed
``date-time`` in the spec but are epoch-millisecond numbers on the wire (see
the reference page), so ``date-time`` maps to an integer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import jsonschema
import pytest

import connector.sandbox.spotler as spotler_package
from connector.sandbox.spotler.app import SpotlerApp
from connector.sandbox.spotler.testing import SignedClient

SPEC = Path(spotler_package.__file__).with_name("spotler-mailplus.swagger-1.2.json")
EPOCH_MS = {"type": "integer", "minimum": 10**11}
NOT_SERVED = {"getMailingHistory", "getCampaignMailingHistory", "getFormHistory"}
WINDOW = {"fromDate": "2000-01-01T00:00:00+01:00", "toDate": "2999-01-01T00:00:00+01:00"}


@cache
def contact_resource() -> dict[str, Any]:
    resources = json.loads(SPEC.read_text(encoding="utf-8"))
    (resource,) = [r for r in resources if r["resourcePath"] == "/contact"]
    result: dict[str, Any] = resource
    return result


def property_schema(spec: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """One Swagger 1.2 property (or items) definition as JSON Schema."""
    if "enum" in spec:
        return {"type": "string", "enum": spec["enum"]}
    ref = spec.get("$ref")
    if ref == "date-time":
        return dict(EPOCH_MS)
    if ref is not None and ref.startswith("Map["):
        return {"type": "object"}
    if ref is not None:
        if ref not in models:
            raise KeyError(f"unknown model {ref}")
        return {"$ref": f"#/definitions/{ref}"}
    kind = spec["type"]
    if kind == "array":
        return {"type": "array", "items": property_schema(spec["items"], models)}
    if kind in ("integer", "boolean", "string", "number"):
        return {"type": kind}
    if kind in models:  # Swagger 1.2 also names models in "type"
        return {"$ref": f"#/definitions/{kind}"}
    raise KeyError(f"unknown type {kind}")


def model_schema(model: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": model.get("required", []),
        "properties": {k: property_schema(v, models) for k, v in model["properties"].items()},
        "additionalProperties": False,
    }


def to_json_schema(root: dict[str, Any]) -> dict[str, Any]:
    """A response type (``{"type": M}`` or ``{"type": "array", "items": ...}``) with all models."""
    models = contact_resource()["models"]
    schema = property_schema(root, models)
    schema["definitions"] = {name: model_schema(m, models) for name, m in models.items()}
    return schema


def validate(instance: Any, root: dict[str, Any]) -> None:
    jsonschema.validate(instance, to_json_schema(root))


def sample(schema: dict[str, Any], definitions: dict[str, Any]) -> Any:
    """A value with every declared field filled, as a client generated from the spec sends."""
    if "$ref" in schema:
        return sample(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema["type"]
    if kind == "object":
        return {k: sample(v, definitions) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [sample(schema["items"], definitions)]
    return {"integer": 1_700_000_000_000, "boolean": False, "string": "spec", "number": 1.5}[kind]


class Env(NamedTuple):
    app: SpotlerApp
    url: str
    api: SignedClient


@pytest.fixture
def env(running: tuple[SpotlerApp, str]) -> Iterator[Env]:
    app, url = running
    httpx.post(url + "/_sandbox/reset").raise_for_status()
    with SignedClient(url + "/integrationservice") as api:
        yield Env(app, url, api)


def seed(env: Env) -> None:
    contacts = [
        {"externalId": "1", "properties": {"email": "one@example.com", "firstName": "Eén",
                                           "permissions": [{"bit": 1, "enabled": True}]}},
        {"externalId": "2", "properties": {"email": "two@example.com", "city": "Ede"}},
    ]
    results = env.api.post("contact/list", {"update": True, "contacts": contacts}).json()
    assert {r["code"] for r in results} == {"OK"}
    for body in ({"externalId": "1", "type": "HARDBOUNCE", "encryptedActId": "a1"},
                 {"externalId": "2", "type": "SOFTBOUNCE"}):
        httpx.post(f"{env.url}/_sandbox/bounce", json=body).raise_for_status()


def operations() -> list[Any]:
    return [
        pytest.param(op["method"], api["path"], op, id=op["nickname"])
        for api in contact_resource()["apis"]
        for op in api["operations"]
        if op["nickname"] not in NOT_SERVED
    ]


def call(env: Env, method: str, path: str) -> httpx.Response:
    """One spec operation with a plausible request."""
    concrete = path.replace("{externalId}", "1")
    if path.endswith(("updates/list", "bounces/list")):
        return env.api.get(concrete, params={**WINDOW, "pageSize": 1})
    if path.endswith("/search"):
        return env.api.get(concrete, params={"MPSearchQuery": "email=one@example.com",
                                             "pageSize": 10})
    if path == "/contact/list":
        return env.api.post(concrete, {"update": True, "contacts": [{"externalId": "9"}]})
    if method == "POST":
        return env.api.post(concrete, {"update": True, "contact": {"externalId": "9"}})
    if method == "PUT" and "anonymize" not in path:
        return env.api.put(concrete, {"contact": {"externalId": "1", "properties": {"city": "X"}}})
    return env.api.request(method, concrete)


def test_the_converter_covers_every_contact_model() -> None:
    models = contact_resource()["models"]
    for name in ("Contact", "ContactRequest", "AddContactsRequest", "AddContactResponse",
                 "ContactsResponse", "BouncesResponse", "ContactBounce", "Property",
                 "ErrorResponse", "Paging"):
        jsonschema.Draft7Validator.check_schema(to_json_schema({"type": name}))
    assert set(models) >= {"Contact", "Paging", "SetPropertyEntry", "Channel"}


@pytest.mark.parametrize(("method", "path", "op"), operations())
def test_every_served_operation_answers_in_the_declared_shape(
    env: Env, method: str, path: str, op: dict[str, Any]
) -> None:
    seed(env)
    response = call(env, method, path)
    if op["type"] == "void":
        assert response.status_code == 204, response.text
        assert response.content == b""
        return
    assert response.status_code == 200, response.text
    is_array = op["type"] == "array"
    root = {"type": "array", "items": op["items"]} if is_array else {"type": op["type"]}
    validate(response.json(), root)


def test_feeds_with_every_item_validate_including_paging_next(env: Env) -> None:
    seed(env)
    updates = env.api.get("contact/updates/list", params={**WINDOW, "pageSize": 1}).json()
    assert "next" in updates["paging"]
    validate(updates, {"type": "ContactsResponse"})
    bounces = env.api.get("contact/bounces/list", params=WINDOW).json()
    assert len(bounces["bounces"]) == 2
    validate(bounces, {"type": "BouncesResponse"})


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "contact/unknown", None, 404),
        ("PUT", "contact/unknown", {"contact": {"externalId": "unknown"}}, 404),
        ("POST", "contact", {"contact": {"externalId": "x", "properties": {"email": "x"}}}, 400),
        ("POST", "contact", {"contact": {"externalId": "x", "properties": {"shoe": 1}}}, 400),
        ("POST", "contact/list", {"contacts": [{"externalId": str(i)} for i in range(101)]}, 400),
        ("GET", "contact/updates/list", None, 400),
    ],
)
def test_documented_errors_are_error_responses(
    env: Env, method: str, path: str, body: Any, status: int
) -> None:
    response = env.api.request(method, path, json=body)
    assert response.status_code == status, response.text
    validate(response.json(), {"type": "ErrorResponse"})


def test_unauthorised_is_an_error_response(env: Env) -> None:
    response = httpx.get(f"{env.url}/integrationservice/contact/1")
    assert response.status_code == 401
    validate(response.json(), {"type": "ErrorResponse"})


@pytest.mark.parametrize("model", ["ContactRequest", "AddContactsRequest"])
def test_request_shapes_from_the_spec_are_accepted(env: Env, model: str) -> None:
    schema = to_json_schema({"type": model})
    body = sample(schema, schema["definitions"])
    contacts = body["contacts"] if model == "AddContactsRequest" else [body["contact"]]
    for contact in contacts:  # every declared field is sent, read-only ones included
        assert set(contact) == set(contact_resource()["models"]["Contact"]["properties"])
        contact["externalId"] = "spec-1"
        contact["properties"] = {"email": "spec@example.com",
                                 "permissions": [{"bit": 1, "enabled": True}]}
    body["update"] = True
    jsonschema.validate(body, {**schema, "$ref": f"#/definitions/{model}"})
    if model == "ContactRequest":
        assert env.api.post("contact", body).status_code == 204
        assert env.api.put("contact/spec-1", body).status_code == 204
    else:
        results = env.api.post("contact/list", body).json()
        assert [r["code"] for r in results] == ["OK"]
    stored = env.api.get("contact/spec-1").json()
    validate(stored, {"type": "Contact"})
    assert stored["created"] != 1_700_000_000_000  # read-only: ignored
    assert stored["channels"] == [{"name": "EMAIL", "value": True}]
