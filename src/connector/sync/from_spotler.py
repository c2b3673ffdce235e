"""Read a Spotler contact into the mapping's Spotler-side names (``permissions.<bit>``)."""

from __future__ import annotations

from connector.schemas.events import Value
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import Contact

__all__ = ["spotler_values"]


def spotler_values(contact: Contact, mapping: Mapping) -> dict[str, Value]:
    """Mapped values of ``contact``; an absent property is None, an absent bit is off."""
    bits = contact.permissions()
    values: dict[str, Value] = {}
    for field in mapping.fields:
        if field.permission_bit is not None:
            values[field.name] = bool(bits.get(field.permission_bit, False))
        else:
            raw = contact.properties.get(field.name)
            values[field.name] = None if raw in (None, "") else str(raw)
    return values
