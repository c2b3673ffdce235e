"""A contact as the sandbox holds it, how writes merge into it, and how it is shown."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from connector.sandbox.spotler.catalogue import CLEAR, Catalogue, SetWrite, StoredValue
from connector.sandbox.spotler.wire import Channel, Contact

__all__ = ["ContactRecord", "ContactView", "encrypted_id", "merged", "render", "view"]


class ContactRecord(msgspec.Struct):
    """A contact as the sandbox holds it."""

    external_id: str
    created: int
    last_changed: int
    encrypted_id: str
    values: dict[str, StoredValue]
    test_group: bool = False
    active: bool = True
    soft_bounces: int = 0
    api_writes: int = 0  # accepted API writes, changed or not: lets tests count double writes
    # lastChanged of the latest API writes that changed something (newest last, at most
    # API_CHANGES_KEPT): lets a test tell an edit a write overwrote from one it raced.
    api_changes: list[int] = msgspec.field(default_factory=list)


class ContactView(Contact):
    """A Contact plus the state the API does not show (control API only)."""

    active: bool
    softBounces: int
    apiWrites: int = 0
    apiChanges: list[int] = msgspec.field(default_factory=list)


def encrypted_id(external_id: str, created: int) -> str:
    return hashlib.blake2b(f"{external_id}|{created}".encode(), digest_size=16).hexdigest()


def merged(old: Mapping[str, StoredValue], parsed: Mapping[str, Any]) -> dict[str, StoredValue]:
    """``old`` with a parsed write applied: scalars set or cleared, sets merged per bit."""
    values = dict(old)
    for name, value in parsed.items():
        if value is CLEAR:
            values.pop(name, None)
        elif isinstance(value, SetWrite):
            current = values.get(name, frozenset())
            bits = current if isinstance(current, frozenset) else frozenset()
            bits = (bits - value.mentioned) | value.on
            if bits:
                values[name] = bits
            else:  # no bit on is the same as never set: keeps change detection exact
                values.pop(name, None)
        else:
            values[name] = value
    return values


def render(record: ContactRecord, catalogue: Catalogue) -> Contact:
    """The Contact the API returns."""
    return Contact(
        externalId=record.external_id,
        created=record.created,
        encryptedId=record.encrypted_id,
        testGroup=record.test_group,
        lastChanged=record.last_changed,
        temporary=False,
        properties=catalogue.render(record.values),
        channels=_channels(record, catalogue),
    )


def view(record: ContactRecord, catalogue: Catalogue) -> ContactView:
    contact = render(record, catalogue)
    fields = {f: getattr(contact, f) for f in contact.__struct_fields__}
    return ContactView(
        **fields, active=record.active, softBounces=record.soft_bounces, apiWrites=record.api_writes,
        apiChanges=list(record.api_changes),
    )


def _channels(record: ContactRecord, catalogue: Catalogue) -> list[Channel]:
    """EMAIL (and SMS when the catalogue has a mobile number): data present and active."""

    def present(kind: str) -> bool:
        return any(catalogue.type_of(name) == kind for name in record.values)

    channels = [Channel("EMAIL", record.active and present("email"))]
    if any(p.type == "mobNr" for p in catalogue.properties):
        channels.append(Channel("SMS", record.active and present("mobNr")))
    return channels
