"""Tombstones: the contacts the link has forgotten, and since when (ids and times only).

A tombstone (``connector:forgotten``, a sorted set ContactId → epoch seconds)
stops anything from bringing a forgotten contact's data back: the ordering
scripts refuse to write its agreed state (``connector.state.ordering``), the
workers acknowledge its changes as *forgotten* without writing, the producers
skip it, and no dead letter, rejection or conflict is stored for it.

A tombstone is kept ``TOMBSTONE_DAYS`` (30 days). An old event can reach the
link for at most 7 days after it was made: the broker delays a message by at
most 7 days, Dramatiq keeps its own dead letters 7 days, a queued message is
dead-lettered after 6 h (``DEFAULT_MAX_AGE_MS``), the AFAS producer looks back
65 minutes and the Spotler producer at most ``SPOTLER_RESTART_LOOKBACK_S``
(24 h). Past 30 days nothing old is left that names the contact; what AFAS
lists then (a contact forgotten with ``--force``) is synced as a new contact.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import redis

from connector.state import keys

__all__ = ["TOMBSTONE_DAYS", "Tombstones"]

TOMBSTONE_DAYS = 30


class Tombstones:
    """Add, look up and expire tombstones."""

    def __init__(self, client: redis.Redis, *, keep_s: float = TOMBSTONE_DAYS * 86400) -> None:
        self.client = client
        self.keep_s = keep_s

    def add(self, contact_ids: Iterable[str], now: float | None = None) -> None:
        ids = list(contact_ids)
        if ids:
            self.client.zadd(keys.FORGOTTEN, dict.fromkeys(ids, time.time() if now is None else now))

    def which(self, contact_ids: Sequence[str]) -> set[str]:
        """The ones among ``contact_ids`` that are forgotten (one round trip)."""
        ids = list(dict.fromkeys(contact_ids))
        if not ids:
            return set()
        scores = self.client.zmscore(keys.FORGOTTEN, ids)
        return {cid for cid, score in zip(ids, scores, strict=True) if score is not None}

    def forgotten(self, contact_id: str) -> bool:
        return bool(self.which([contact_id]))

    def count(self) -> int:
        return int(self.client.zcard(keys.FORGOTTEN))

    def expire(self, now: float | None = None) -> int:
        """Drop tombstones older than ``keep_s``; returns how many."""
        cutoff = (time.time() if now is None else now) - self.keep_s
        return int(self.client.zremrangebyscore(keys.FORGOTTEN, "-inf", cutoff))
