"""Decode and validate one GetConnector row into the values Spotler should hold."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from connector.schemas.events import Value
from connector.schemas.mapping import Mapping

__all__ = ["ContactRecord", "Rejection", "decode_row", "is_valid_email"]

# Deliberately plain: one "@", no spaces, a dotted domain with a 2+ letter top level.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)*\.[A-Za-z]{2,}$")


def is_valid_email(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.match(value) is not None


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """Why one row was not synced: which contact, which field, which rule."""

    contact_id: str | None
    field: str
    reason: str
    source: str = "afas"


class ContactRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A valid row: its keys and the Spotler-side values it maps to."""

    contact_id: str
    person_id: str
    organisation_id: str
    values: dict[str, Value]
    blocked: bool
    modified: str


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def decode_row(row: dict[str, Any], mapping: Mapping) -> ContactRecord | Rejection:
    """Turn a row into a record, or say precisely why it cannot be synced."""
    keys = mapping.keys
    contact_id = _text(row.get(keys.contact_id))
    if contact_id is None:
        return Rejection(contact_id=None, field=keys.contact_id, reason="missing contact id")
    for column, what in ((keys.person_id, "person"), (keys.organisation_id, "organisation")):
        if _text(row.get(column)) is None:
            reason = (
                "contact has no organisation (every contact must hang under an organisation)"
                if what == "organisation"
                else "contact has no person (department or organisation contact)"
            )
            return Rejection(contact_id=contact_id, field=column, reason=reason)
    email = _text(row.get(keys.email))
    if email is None:
        return Rejection(contact_id=contact_id, field=keys.email, reason="no e-mail address")
    if not is_valid_email(email):
        return Rejection(contact_id=contact_id, field=keys.email, reason="invalid e-mail address")
    blocked = bool(row.get(keys.blocked)) if keys.blocked else False
    values: dict[str, Value] = {}
    for field in mapping.fields:
        raw = row.get(field.column)
        if field.permission_bit is not None:
            values[field.name] = False if blocked else bool(raw)
        else:
            values[field.name] = _text(raw)
    modified = max((str(row.get(c) or "") for c in keys.modified), default="")
    return ContactRecord(
        contact_id=contact_id,
        person_id=str(_text(row.get(keys.person_id))),
        organisation_id=str(_text(row.get(keys.organisation_id))),
        values=values,
        blocked=blocked,
        modified=modified,
    )
