"""Queue messages: tagged-union Structs, sent as builtins, rebuilt with msgspec.convert.

They tolerate unknown fields so that a rolling deploy (old worker, new
producer) keeps working; new fields are added with defaults only.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "AfasChange",
    "ContactChange",
    "Event",
    "SpotlerBatch",
    "Value",
    "from_builtins",
    "to_builtins",
]

# Values on the Spotler side of the mapping: text properties and permission bits.
Value = str | bool | None


class ContactChange(msgspec.Struct, frozen=True, kw_only=True, tag="contact_change"):
    """What changed for one AFAS contact, in Spotler field names (``permissions.<bit>``)."""

    contact_id: str
    changes: dict[str, Value]
    key: str
    modified: str = ""
    person_id: str | None = None
    organisation_id: str | None = None
    new: bool = False
    blocked: bool = False


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
    key: str
    last_changed: int = 0
    bounce: str | None = None
    new_agreed: dict[str, Value] = msgspec.field(default_factory=dict)


Event = ContactChange | SpotlerBatch | AfasChange


def to_builtins(event: Event) -> dict[str, Any]:
    data = msgspec.to_builtins(event)
    assert isinstance(data, dict)
    return data


def from_builtins(data: Any) -> Event:
    event: Event = msgspec.convert(data, Event)
    return event
