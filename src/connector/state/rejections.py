"""Rejected records: which contact, which field, why; kept for ``RETENTION_DAYS`` after they were last seen.

Expiry runs in the retention sweep (``connector.state.retention``); a
forgotten contact (``connector.state.tombstones``) gets no record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import cast

import msgspec
import redis

from connector.events import emit
from connector.state import keys
from connector.state.journal import Journal, Rejected, text
from connector.state.tombstones import Tombstones
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


def _ids(source: str) -> str:
    # The contacts with a rejection from ``source``: lets ``resolve`` skip the rest.
    return f"{keys.REJECTIONS}:ids:{source}"


class RejectionStore:
    """One entry per (source, contact, field); seeing it again refreshes last_seen."""

    def __init__(self, client: redis.Redis, retention_s: float = 30 * 86400) -> None:
        self.client = client
        self.retention_s = retention_s

    @staticmethod
    def _member(r: Rejection) -> str:
        return f"{r.source}:{r.contact_id or '-'}:{r.field}"

    def add_many(self, rejections: Iterable[Rejection], now: float | None = None) -> int:
        rejections = list(rejections)
        forgotten = Tombstones(self.client).which([r.contact_id for r in rejections if r.contact_id is not None])
        rejections = [r for r in rejections if r.contact_id not in forgotten]
        if not rejections:
            return 0
        now = time.time() if now is None else now
        members = [self._member(r) for r in rejections]
        old = self.client.hmget(keys.REJECTIONS, members)
        pipe = self.client.pipeline(transaction=False)
        news: list[Rejection] = []  # first seen, or seen with another reason: an event each
        for member, rejection, previous in zip(members, rejections, old, strict=True):
            known = _decode(previous) if previous else None
            first = known.first_seen if known is not None else now
            if known is None or known.reason != rejection.reason:
                news.append(rejection)
            record = RejectionRecord(
                contact_id=rejection.contact_id, field=rejection.field, reason=rejection.reason,
                source=rejection.source, first_seen=first, last_seen=now,
            )
            pipe.hset(keys.REJECTIONS, member, _encode(record))
            pipe.zadd(keys.REJECTIONS_BY_TIME, {member: now})
            if rejection.contact_id is not None:
                pipe.sadd(_ids(rejection.source), rejection.contact_id)
        pipe.execute()
        emit.rejected(self.client, news)
        journal = Journal.for_process(self.client)
        if journal is not None and news:
            journal.append((r.contact_id, Rejected(source=r.source, field=r.field, reason=text(r.reason)))
                           for r in news if r.contact_id)
        return len(rejections)

    def resolve(self, source: str, contact_ids: Iterable[str], fields: Iterable[str]) -> None:
        """Forget earlier rejections of contacts that now sync fine (only those that have any: one set lookup)."""
        ids = list(contact_ids)
        if not ids:
            return
        self._index_once(source)
        flagged = [c for c, hit in zip(ids, self.client.smismember(_ids(source), ids), strict=True) if hit]
        if not flagged:
            return
        members = [f"{source}:{c}:{f}" for c in flagged for f in fields]
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(keys.REJECTIONS, *members)
        pipe.zrem(keys.REJECTIONS_BY_TIME, *members)
        pipe.srem(_ids(source), *flagged)
        pipe.execute()

    def _index_once(self, source: str) -> None:
        """Rejections stored before the per-source index existed get indexed, once."""
        built = f"{_ids(source)}:built"
        if self.client.set(built, 1, nx=True):
            prefix = f"{source}:"
            for member, _ in self.client.hscan_iter(keys.REJECTIONS, match=f"{prefix}*", count=1000):
                contact = keys.as_bytes(member).decode()[len(prefix):].rpartition(":")[0]
                if contact and contact != "-":
                    self.client.sadd(_ids(source), contact)

    def expire(self, now: float | None = None) -> int:
        """Drop records not seen for ``retention_s``; returns how many."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        old = cast(list[bytes], self.client.zrangebyscore(keys.REJECTIONS_BY_TIME, "-inf", cutoff))
        self._remove(old)
        return len(old)

    def forget(self, contact_ids: Iterable[str]) -> int:
        """Remove every record of these contacts, from either source; returns how many."""
        ids = set(contact_ids)
        members: list[bytes] = []
        for member, _ in self.client.hscan_iter(keys.REJECTIONS, count=1000):
            raw = keys.as_bytes(member)
            parts = raw.decode().split(":", 2)
            if len(parts) == 3 and parts[1] in ids:
                members.append(raw)
        self._remove(members)
        if ids:
            for source in ("afas", "spotler"):
                self.client.srem(_ids(source), *ids)
        return len(members)

    def _remove(self, members: list[bytes]) -> None:
        if members:
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(keys.REJECTIONS, *members)
            pipe.zrem(keys.REJECTIONS_BY_TIME, *members)
            pipe.execute()

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
