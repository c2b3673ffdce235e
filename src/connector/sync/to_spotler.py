"""Build the Spotler contact for a change: properties plus permission bits."""

from __future__ import annotations

from connector.schemas.events import ContactChange
from connector.schemas.spotler import Contact, Permission

__all__ = ["contact_for"]


def contact_for(change: ContactChange) -> Contact:
    """A partial contact: only the changed properties; permissions merged per bit by Spotler."""
    properties: dict[str, object] = {}
    permissions: list[Permission] = []
    for name, value in sorted(change.changes.items()):
        if name.startswith("permissions."):
            permissions.append(Permission(bit=int(name.split(".", 1)[1]), enabled=bool(value)))
        else:
            # Spotler clears a property sent as an empty string; None would be ignored.
            properties[name] = "" if value is None else value
    if permissions:
        properties["permissions"] = permissions
    return Contact(externalId=change.contact_id, properties=properties)
