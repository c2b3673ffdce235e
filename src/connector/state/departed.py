"""Departed contacts: synced once, missed by a full pass since (ids and times only).

``connector:departed`` is a sorted set ContactId → when a full pass first
found the contact gone from the GetConnector (confirmed by id). A contact the
walk finds again leaves the set. One that stays gone for ``FORGET_AFTER_DAYS``
is forgotten by the retention sweep (``connector.producers.deletions``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

import redis

from connector.state import keys

__all__ = ["Departed"]


class Departed:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def note(self, contact_ids: Iterable[str], now: float | None = None) -> None:
        """Record the contacts as gone; one already recorded keeps its first time."""
        ids = list(contact_ids)
        if ids:
            self.client.zadd(keys.DEPARTED, dict.fromkeys(ids, time.time() if now is None else now), nx=True)

    def back(self, contact_ids: Iterable[str]) -> None:
        """The contacts are listed again."""
        ids = list(contact_ids)
        if ids:
            self.client.zrem(keys.DEPARTED, *ids)

    def due(self, after_s: float, now: float | None = None) -> list[str]:
        """Contacts gone for at least ``after_s``, longest gone first."""
        cutoff = (time.time() if now is None else now) - after_s
        return _strings(self.client.zrangebyscore(keys.DEPARTED, "-inf", cutoff))

    def since(self, contact_id: str) -> float | None:
        score = self.client.zscore(keys.DEPARTED, contact_id)
        return None if score is None else float(score)

    def all(self) -> list[str]:
        return _strings(self.client.zrange(keys.DEPARTED, 0, -1))


def _strings(members: object) -> list[str]:
    return [keys.as_bytes(m).decode() for m in cast(list[bytes], members)]
