"""Settled conflicts: contact, field, both values, the rule and the outcome; kept ``RETENTION_DAYS``.

Expiry runs in the retention sweep (``connector.state.retention``); a
forgotten contact (``connector.state.tombstones``) gets no record.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from typing import cast

import msgspec
import redis

from connector.events import emit
from connector.state.keys import PREFIX, as_bytes
from connector.state.tombstones import Tombstones
from connector.sync.merge import Conflict

__all__ = ["ConflictRecord", "ConflictStore"]

_HASH = f"{PREFIX}:conflicts"
_BY_TIME = f"{PREFIX}:conflicts:t"


class ConflictRecord(msgspec.Struct, frozen=True, kw_only=True):
    conflict: Conflict
    at: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ConflictRecord).decode


class ConflictStore:
    """One record per distinct conflict (both producers may see the same one)."""

    def __init__(self, client: redis.Redis, retention_s: float = 30 * 86400) -> None:
        self.client = client
        self.retention_s = retention_s

    @staticmethod
    def _member(c: Conflict) -> str:
        digest = hashlib.blake2b(msgspec.json.encode([c.afas_value, c.spotler_value]), digest_size=6).hexdigest()
        return f"{c.contact_id}:{c.field}:{digest}"

    def add_many(self, conflicts: Iterable[Conflict], now: float | None = None) -> int:
        now = time.time() if now is None else now
        conflicts = list(conflicts)
        forgotten = Tombstones(self.client).which([c.contact_id for c in conflicts])
        added: list[Conflict] = []
        for conflict in conflicts:
            if conflict.contact_id in forgotten:
                continue
            member = self._member(conflict)
            if self.client.hsetnx(_HASH, member, _encode(ConflictRecord(conflict=conflict, at=now))):
                self.client.zadd(_BY_TIME, {member: now})
                added.append(conflict)
        emit.conflicts_settled(self.client, added)
        return len(added)

    def expire(self, now: float | None = None) -> int:
        """Drop records older than ``retention_s``; returns how many."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        old = cast(list[bytes], self.client.zrangebyscore(_BY_TIME, "-inf", cutoff))
        self._remove(old)
        return len(old)

    def forget(self, contact_ids: Iterable[str]) -> int:
        """Remove every record of these contacts; returns how many."""
        ids = set(contact_ids)
        members = [as_bytes(m) for m, _ in self.client.hscan_iter(_HASH, count=1000)
                   if as_bytes(m).decode().split(":", 1)[0] in ids]
        self._remove(members)
        return len(members)

    def _remove(self, members: list[bytes]) -> None:
        if members:
            self.client.hdel(_HASH, *members)
            self.client.zrem(_BY_TIME, *members)

    def list(self, limit: int | None = None) -> list[ConflictRecord]:
        members = cast(list[bytes], self.client.zrevrange(_BY_TIME, 0, (limit or 0) - 1))
        raw = self.client.hmget(_HASH, members) if members else []
        return [_decode(r) for r in raw if r is not None]

    def by_rule(self) -> Counter[str]:
        return Counter(r.conflict.rule for r in self.list())

    def count(self) -> int:
        return int(self.client.hlen(_HASH))
