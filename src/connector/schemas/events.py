"""Queue messages: tagged-union Structs, sent as builtins, rebuilt with msgspec.convert.

They tolerate unknown fields so that a rolling deploy (old worker, new
producer) keeps working; new fields are added with defaults only.

A change carries, per field, the source's change stamp (``stamps``, epoch ms)
and the agreed stamp it was decided against (``bases``); the workers apply a
field only when it is newer (``connector.state.ordering``). A message from
before stamps has neither and is held back only by a newer pending change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = [
    "AfasChange",
    "ContactChange",
    "Event",
    "FieldWrite",
    "SpotlerBatch",
    "Value",
    "field_writes",
    "from_builtins",
    "to_builtins",
]

# Values on the Spotler side of the mapping: text properties and permission bits.
Value = str | bool | None


class FieldWrite(msgspec.Struct, array_like=True, frozen=True):
    """One field of a change: its value, the source's stamp (epoch ms), the agreed stamp it was decided on."""

    name: str
    value: Value
    stamp: int
    base: int = -1  # -1: unknown (a message from before stamps): only newer pending changes hold it back


class ContactChange(msgspec.Struct, frozen=True, kw_only=True, tag="contact_change"):
    """What changed for one AFAS contact, in Spotler field names (``permissions.<bit>``)."""

    contact_id: str
    changes: dict[str, Value]
    key: str = ""
    modified: str = ""
    person_id: str | None = None
    organisation_id: str | None = None
    new: bool = False
    blocked: bool = False
    stamps: dict[str, int] = msgspec.field(default_factory=dict)
    bases: dict[str, int] = msgspec.field(default_factory=dict)
    reassert: bool = False  # puts back a value this system held before our write overwrote it
    # Spotler's value of a changed field when the change was decided (a conflict's losing value):
    # Spotler still holding it later is no new edit there, whatever lastChanged says.
    seen: dict[str, Value] = msgspec.field(default_factory=dict)


class SpotlerBatch(msgspec.Struct, frozen=True, kw_only=True, tag="spotler_batch"):
    """Up to 100 contact changes that become one ``POST contact/list``."""

    changes: list[ContactChange]
    run_id: str = ""
    attempt: int = 0


class AfasChange(msgspec.Struct, frozen=True, kw_only=True, tag="afas_change"):
    """What changed in Spotler for one contact and must go back to AFAS (winners only)."""

    contact_id: str
    person_id: str
    organisation_id: str
    changes: dict[str, Value]
    key: str = ""
    last_changed: int = 0
    bounce: str | None = None
    run_id: str = ""
    stamps: dict[str, int] = msgspec.field(default_factory=dict)
    bases: dict[str, int] = msgspec.field(default_factory=dict)
    reassert: bool = False
    # AFAS's value of a changed field when the change was decided (a conflict's losing value): AFAS
    # still holding it later is no new edit there, though the row's stamp moved with other fields.
    seen: dict[str, Value] = msgspec.field(default_factory=dict)


Event = ContactChange | SpotlerBatch | AfasChange


def field_writes(change: ContactChange | AfasChange, names: Iterable[str] | None = None) -> list[FieldWrite]:
    """The change's fields (or only ``names``) as ordered writes."""
    chosen = change.changes if names is None else {n: change.changes[n] for n in names if n in change.changes}
    return [
        FieldWrite(name, value, change.stamps.get(name, 0), change.bases.get(name, -1))
        for name, value in sorted(chosen.items())
    ]


def to_builtins(event: Event) -> dict[str, Any]:
    data = msgspec.to_builtins(event)
    assert isinstance(data, dict)
    return data


def from_builtins(data: Any) -> Event:
    event: Event = msgspec.convert(data, Event)
    return event
