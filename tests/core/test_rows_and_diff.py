from __future__ import annotations

from typing import Any

import pytest

from connector.schemas.events import ContactChange
from connector.schemas.mapping import load_mapping
from connector.sync.diff import change_key, diff
from connector.sync.rows import ContactRecord, Rejection, decode_row, is_valid_email
from connector.sync.to_spotler import contact_for

MAPPING = load_mapping(None)


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ContactId": 101, "PersonNo": "P1", "OrganisationId": "O1", "OrganisationName": "Bakkerij de Vries",
        "FirstName": "Jan", "Prefix": "van der", "LastName": "Berg", "Email": "jan@example.nl",
        "City": "Utrecht", "Sector": "HORECA", "CustomerType": "Klant", "Newsletter": True,
        "ProductNews": False, "Blocked": False, "ContactModified": "2026-03-29T01:30:00Z",
        "PersonModified": "2026-03-29T03:30:00Z", "OrganisationModified": None,
    }
    base.update(overrides)
    return base


def test_valid_row_maps_to_spotler_names() -> None:
    record = decode_row(row(), MAPPING)
    assert isinstance(record, ContactRecord)
    assert record.contact_id == "101"
    assert record.values["lastName"] == "Berg"
    assert record.values["infix"] == "van der"
    assert record.values["permissions.1"] is True
    assert record.values["permissions.2"] is False
    assert record.modified == "2026-03-29T03:30:00Z"


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"Email": None}, "Email", "no e-mail address"),
        ({"Email": "  "}, "Email", "no e-mail address"),
        ({"Email": "jan@@example"}, "Email", "invalid e-mail address"),
        ({"Email": "geen"}, "Email", "invalid e-mail address"),
        ({"OrganisationId": None}, "OrganisationId", "organisation"),
        ({"PersonNo": None}, "PersonNo", "person"),
        ({"ContactId": None}, "ContactId", "missing contact id"),
    ],
)
def test_invalid_rows_are_rejected_with_field_and_reason(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    result = decode_row(row(**overrides), MAPPING)
    assert isinstance(result, Rejection)
    assert result.field == field
    assert reason in result.reason


def test_blocked_contact_has_every_permission_off() -> None:
    record = decode_row(row(Blocked=True, Newsletter=True, ProductNews=True), MAPPING)
    assert isinstance(record, ContactRecord)
    assert record.values["permissions.1"] is False
    assert record.values["permissions.2"] is False


def test_email_validation() -> None:
    assert is_valid_email("a.b+c@sub.example.co.uk")
    assert not is_valid_email("a b@example.nl")
    assert not is_valid_email("a@example")


def test_diff_against_agreed_state() -> None:
    values = {"email": "a@example.nl", "lastName": "Berg", "permissions.1": False, "city": None}
    assert diff(values, None) == {"email": "a@example.nl", "lastName": "Berg", "permissions.1": False}
    assert diff(values, dict(values)) == {}
    assert diff(values, {**values, "lastName": "Bergh"}) == {"lastName": "Berg"}


def test_change_key_depends_on_stamp_and_content() -> None:
    a = change_key("afas", "1", "2026-01-01T00:00:00Z", {"x": "1"})
    assert a == change_key("afas", "1", "2026-01-01T00:00:00Z", {"x": "1"})
    assert a != change_key("afas", "1", "2026-01-01T00:00:01Z", {"x": "1"})
    assert a != change_key("afas", "1", "2026-01-01T00:00:00Z", {"x": "2"})


def test_contact_for_builds_properties_and_permission_bits() -> None:
    change = ContactChange(
        contact_id="7", key="k", changes={"lastName": "Berg", "infix": None, "permissions.2": True}
    )
    contact = contact_for(change)
    assert contact.externalId == "7"
    assert contact.properties["lastName"] == "Berg"
    assert contact.properties["infix"] == ""
    perms = contact.properties["permissions"]
    assert [(p.bit, p.enabled) for p in perms] == [(2, True)]
