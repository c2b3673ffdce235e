"""Decode and validate one GetConnector row into the values Spotler should hold.

Consent comes only from real booleans: a yes/no column (a permission, the
blocked flag) holding anything but ``true``, ``false`` or null (a string
``"false"``, a ``0``) rejects the row with that column and why, since reading
it any other way could turn a refusal into an opt-in. Null reads as "no".
A modification date that is not a date rejects the row too.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from connector.clients.afas import parse_afas_datetime
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
    stamp: int = 0  # the newest modification date, epoch ms: the change stamp of every field of the row


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
    blocked = False
    if keys.blocked:
        flag = row.get(keys.blocked)
        if not _is_yesno(flag):
            return Rejection(contact_id=contact_id, field=keys.blocked, reason=_not_yesno(flag))
        blocked = flag is True
    values: dict[str, Value] = {}
    for field in mapping.fields:
        raw = row.get(field.column)
        if field.permission_bit is not None or field.type == "yesno":
            if not _is_yesno(raw):
                return Rejection(contact_id=contact_id, field=field.column, reason=_not_yesno(raw))
            # A permission bit is a bool; a yes/no Spotler property keeps its text form.
            values[field.name] = (False if blocked else raw is True) if field.permission_bit is not None else _text(raw)
        else:
            values[field.name] = _text(raw)
    stamp, modified = 0, ""
    for column in keys.modified:
        text = row.get(column)
        if text in (None, ""):
            continue
        try:
            moment = int(parse_afas_datetime(str(text)).timestamp() * 1000)
        except (ValueError, OverflowError):
            return Rejection(contact_id=contact_id, field=column, reason="modification date is not a date")
        if moment > stamp:
            stamp, modified = moment, str(text)
    return ContactRecord(
        contact_id=contact_id,
        person_id=str(_text(row.get(keys.person_id))),
        organisation_id=str(_text(row.get(keys.organisation_id))),
        values=values,
        blocked=blocked,
        modified=modified,
        stamp=stamp,
    )


def _is_yesno(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _not_yesno(value: Any) -> str:
    # The type, never the value: a rejection reason is shown on the status page.
    return f"yes/no field is not a boolean (got {type(value).__name__})"
