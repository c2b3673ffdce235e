"""Changes as differences against the agreed state of a contact."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from connector.schemas.events import Value

__all__ = ["change_key", "diff", "still_seen"]


def diff(values: Mapping[str, Value], agreed: Mapping[str, Value] | None) -> dict[str, Value]:
    """The fields whose value differs from what both sides last agreed on.

    With no agreed state yet (a contact never synced) every non-empty value
    counts, and so do permission bits that are off: Spotler must learn them.
    """
    if agreed is None:
        return {k: v for k, v in values.items() if v is not None or k.startswith("permissions.")}
    return {k: v for k, v in values.items() if agreed.get(k) != v}


def still_seen(seen: Mapping[str, Value], name: str, values: Mapping[str, Value]) -> bool:
    """``values`` still hold the value of ``name`` a change was decided against (``seen``): no edit since.

    Both systems stamp more than a field (a Spotler contact, an AFAS row), so a later stamp
    alone does not tell that a field was edited after the change was decided.
    """
    return name in seen and values.get(name) == seen[name]


def change_key(source: str, entity: str, stamp: str, changes: Mapping[str, Value]) -> str:
    """Idempotency key: source, entity, the source's change stamp and a hash of the content."""
    digest = hashlib.blake2b(
        msgspec.json.encode(sorted(changes.items())), digest_size=12
    ).hexdigest()
    return f"{source}:{entity}:{stamp}:{digest}"
