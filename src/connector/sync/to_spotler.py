"""Build the Spotler contact for a change: properties plus permission bits."""

from __future__ import annotations

from collections.abc import Iterable

from connector.schemas.events import ContactChange
from connector.schemas.spotler import Contact, Permission

__all__ = ["contact_for"]


def contact_for(change: ContactChange, all_bits: Iterable[int] = ()) -> Contact:
    """A partial contact: only the changed properties; permissions merged per bit by Spotler.

    A blocked contact is unmailable: every permission bit Spotler knows
    (``all_bits``) is sent as off, mapped or not, on every write while it stays blocked.
    """
    properties: dict[str, object] = {}
    permissions: list[Permission] = []
    if change.blocked:
        mapped = {int(n.split(".", 1)[1]) for n in change.changes if n.startswith("permissions.")}
        permissions += [Permission(bit=b, enabled=False) for b in sorted(set(all_bits) - mapped)]
    for name, value in sorted(change.changes.items()):
        if name.startswith("permissions."):
            permissions.append(Permission(bit=int(name.split(".", 1)[1]), enabled=bool(value)))
        else:
            # Spotler clears a property sent as an empty string; None would be ignored.
            properties[name] = "" if value is None else value
    if permissions:
        properties["permissions"] = sorted(permissions, key=lambda p: p.bit)
    return Contact(externalId=change.contact_id, properties=properties)
