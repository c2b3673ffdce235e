"""Spotler values seen in its feed that are not yet agreed (changes on their way to AFAS)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state.keys import PREFIX, as_bytes

__all__ = ["SeenStore", "SeenValues"]


class SeenValues(msgspec.Struct, frozen=True):
    values: dict[str, Value]
    last_changed: int  # Spotler lastChanged, epoch ms


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(SeenValues).decode
_TTL_S = 7 * 86400


def _key(contact_id: str) -> str:
    return f"{PREFIX}:seen:spotler:{contact_id}"


class SeenStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get_many(self, contact_ids: Sequence[str]) -> list[SeenValues | None]:
        if not contact_ids:
            return []
        return [None if r is None else _decode(as_bytes(r)) for r in self.client.mget([_key(c) for c in contact_ids])]

    def put_many(self, items: Iterable[tuple[str, SeenValues]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for contact_id, seen in items:
            pipe.set(_key(contact_id), _encode(seen), ex=_TTL_S)
        pipe.execute()

    def forget(self, contact_ids: Iterable[str]) -> None:
        keys = [_key(c) for c in contact_ids]
        if keys:
            self.client.delete(*keys)
