"""Rejected records: which contact, which field, why; kept with a retention period."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import cast

import msgspec
import redis

from connector.state import keys
from connector.sync.rows import Rejection

__all__ = ["RejectionRecord", "RejectionStore"]


class RejectionRecord(msgspec.Struct, frozen=True, kw_only=True):
    contact_id: str | None
    field: str
    reason: str
    source: str
    first_seen: float
    last_seen: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(RejectionRecord).decode


class RejectionStore:
    """One entry per (source, contact, field); seeing it again refreshes last_seen."""

    def __init__(self, client: redis.Redis, retention_s: float = 14 * 86400) -> None:
        self.client = client
        self.retention_s = retention_s

    @staticmethod
    def _member(r: Rejection) -> str:
        return f"{r.source}:{r.contact_id or '-'}:{r.field}"

    def add_many(self, rejections: Iterable[Rejection], now: float | None = None) -> int:
        rejections = list(rejections)
        if not rejections:
            return 0
        now = time.time() if now is None else now
        members = [self._member(r) for r in rejections]
        old = self.client.hmget(keys.REJECTIONS, members)
        pipe = self.client.pipeline(transaction=False)
        for member, rejection, previous in zip(members, rejections, old, strict=True):
            first = _decode(previous).first_seen if previous else now
            record = RejectionRecord(
                contact_id=rejection.contact_id, field=rejection.field, reason=rejection.reason,
                source=rejection.source, first_seen=first, last_seen=now,
            )
            pipe.hset(keys.REJECTIONS, member, _encode(record))
            pipe.zadd(keys.REJECTIONS_BY_TIME, {member: now})
        pipe.execute()
        self.expire(now)
        return len(rejections)

    def resolve(self, source: str, contact_ids: Iterable[str], fields: Iterable[str]) -> None:
        """Forget earlier rejections of contacts that now sync fine."""
        members = [f"{source}:{c}:{f}" for c in contact_ids for f in fields]
        if members:
            self.client.hdel(keys.REJECTIONS, *members)
            self.client.zrem(keys.REJECTIONS_BY_TIME, *members)

    def expire(self, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - self.retention_s
        old = self.client.zrangebyscore(keys.REJECTIONS_BY_TIME, "-inf", cutoff)
        if old:
            self.client.hdel(keys.REJECTIONS, *old)
            self.client.zrem(keys.REJECTIONS_BY_TIME, *old)

    def list(self, limit: int | None = None, source: str | None = None) -> list[RejectionRecord]:
        members = cast(list[bytes], self.client.zrevrange(keys.REJECTIONS_BY_TIME, 0, -1))
        raw = self.client.hmget(keys.REJECTIONS, members) if members else []
        records = [_decode(r) for r in raw if r is not None]
        if source:
            records = [r for r in records if r.source == source]
        return records[:limit] if limit else records

    def by_reason(self) -> Counter[str]:
        return Counter(r.reason for r in self.list())

    def count(self) -> int:
        return int(self.client.hlen(keys.REJECTIONS))
