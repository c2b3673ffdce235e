"""The agreed state: per contact, the last values both systems held after a sync."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state import keys

__all__ = ["AgreedStore"]

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(dict[str, Value]).decode


class AgreedStore:
    """One Redis string per contact holding a msgpack map of Spotler-side values."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get_many(self, contact_ids: Sequence[str]) -> list[dict[str, Value] | None]:
        if not contact_ids:
            return []
        raw = self.client.mget([keys.agreed(c) for c in contact_ids])
        return [None if r is None else _decode(keys.as_bytes(r)) for r in raw]

    def get(self, contact_id: str) -> dict[str, Value] | None:
        return self.get_many([contact_id])[0]

    def merge_many(self, updates: Iterable[tuple[str, Mapping[str, Value]]]) -> None:
        """Fold written changes into the agreed state (read-modify-write per contact)."""
        updates = list(updates)
        if not updates:
            return
        current = self.get_many([c for c, _ in updates])
        pipe = self.client.pipeline(transaction=False)
        for (contact_id, changes), before in zip(updates, current, strict=True):
            pipe.set(keys.agreed(contact_id), _encode({**(before or {}), **changes}))
        pipe.execute()

    def contact_ids(self) -> list[str]:
        """Every contact the link has synced (a SCAN: for full passes, not for polls)."""
        prefix = len(keys.agreed(""))
        return [keys.as_bytes(k).decode()[prefix:] for k in self.client.scan_iter(match=keys.agreed("*"), count=1000)]

    def count(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=keys.agreed("*"), count=1000))
