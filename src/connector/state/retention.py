"""The retention sweep: records that name contacts are kept for a bounded time.

Rejections (by when last seen), settled conflicts and dead letters (by when
they failed) are dropped after ``RETENTION_DAYS``; tombstones after
``TOMBSTONE_DAYS`` (``connector.state.tombstones`` says why that is long
enough); the consent trail after ``CONSENT_RETENTION_DAYS`` when given
(``consent_retention_s``; the workers also drop it as they record). The
AFAS producer runs the sweep after every poll, together with the
forgetting of departed contacts (``connector.producers.deletions``).
"""

from __future__ import annotations

import logging
import time

import msgspec
import redis

from connector.state.conflicts import ConflictStore
from connector.state.consent import ConsentTrail
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["RetentionReport", "sweep"]

log = logging.getLogger(__name__)


class RetentionReport(msgspec.Struct, kw_only=True):
    rejections: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    consent_records: int = 0


def sweep(
    client: redis.Redis, *, retention_s: float, now: float | None = None, consent_retention_s: float | None = None,
) -> RetentionReport:
    """Drop what is older than its retention; returns how many of each."""
    now = time.time() if now is None else now
    report = RetentionReport(
        rejections=RejectionStore(client, retention_s=retention_s).expire(now),
        conflicts=ConflictStore(client, retention_s=retention_s).expire(now),
        dead_letters=DeadLetterStore(client).expire(now - retention_s),
        tombstones=Tombstones(client).expire(now),
        consent_records=(ConsentTrail(client, retention_s=consent_retention_s).expire(now)
                         if consent_retention_s is not None else 0),
    )
    if report.dead_letters:
        log.warning("%d dead letter(s) older than the retention (RETENTION_DAYS) deleted", report.dead_letters)
    return report
