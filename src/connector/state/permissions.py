"""Which written permission bits the agreed state now holds: shared by the events and the consent trail."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state.agreed import AgreedStore

__all__ = ["PERMISSION", "PermissionWrite", "bit_of", "permission_writes"]

PERMISSION = "permissions."


class PermissionWrite(msgspec.Struct, frozen=True, kw_only=True):
    """One yes/no permission bit of a written change, and whether the agreed state now holds it.

    ``old`` is the opposite of ``new`` for a contact the target knew (a yes/no the link
    changed was the other value as the link knew it) and None for a contact new to it.
    ``held`` False: the ordering check superseded it (the agreed state holds another value).
    """

    field: str
    bit: int | None
    new: bool
    old: bool | None
    held: bool


def bit_of(name: str) -> int | None:
    suffix = name[len(PERMISSION):]
    return int(suffix) if suffix.isdigit() else None


def permission_writes(
    client: redis.Redis, items: Sequence[tuple[str, dict[str, Value], bool]],
) -> dict[str, list[PermissionWrite]]:
    """Per contact, its changes' yes/no permission bits (items: contact, changes, new to the target)."""
    wanted = [(cid, changes, new) for cid, changes, new in items
              if any(n.startswith(PERMISSION) and isinstance(v, bool) for n, v in changes.items())]
    if not wanted:
        return {}
    states = AgreedStore(client).states([cid for cid, _, _ in wanted])
    found: dict[str, list[PermissionWrite]] = {}
    for (cid, changes, new), state in zip(wanted, states, strict=True):
        agreed = state.values if state is not None else {}
        for name, value in sorted(changes.items()):
            if name.startswith(PERMISSION) and isinstance(value, bool):
                found.setdefault(cid, []).append(PermissionWrite(
                    field=name, bit=bit_of(name), new=value, old=None if new else not value,
                    held=agreed.get(name) == value,
                ))
    return found
