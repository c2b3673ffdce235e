"""Gather every figure of the link from Redis into one StatusReport (read-only).

Every text in the report is redacted here (``connector.redaction``), so the
status page, ``status.json``, ``/metrics`` and ``connector status`` show the
same masked view: a Spotler externalId that is an e-mail address shows as
``<email>``; ids stay visible.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import msgspec
import redis

from connector.events.outbox import Outbox
from connector.redaction import redact
from connector.schemas.runs import PollResult
from connector.settings import Settings
from connector.state import keys
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.limits import ConcurrencyCap
from connector.state.queues import QUEUES
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory
from connector.status import thresholds
from connector.status.queues import queue_status
from connector.status.report import (
    ConflictSummary,
    ConflictView,
    DeadLetterSummary,
    DeadLetterView,
    EventsStatus,
    Limits,
    ProducerStatus,
    RejectionSummary,
    RejectionView,
    StatusReport,
)
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["LATEST", "RUNS", "SOURCES", "collect", "producer_status"]

SOURCES = ("afas", "spotler")
RUNS = 10  # runs per source in a report
LATEST = 5  # latest rejections, dead letters and conflicts in a report
_SPOTLER_RATE_KEY = "connector:limits:rate:spotler"  # state.limits.RateLimiter(name="spotler")
_ERROR_MAX = 160


def collect(
    client: redis.Redis, settings: Settings, *, runs: int = RUNS, latest: int = LATEST, now: float | None = None
) -> StatusReport:
    """Read queues, producers, runs, rejections, dead letters, conflicts, limits and counters."""
    now = time.time() if now is None else now
    dead = DeadLetterStore(client)
    queues = [queue_status(client, q, dead_letters=dead.count(q), now=now) for q in QUEUES]
    history = RunHistory(client)
    producers = [producer_status(client, history, source, now) for source in SOURCES]
    alerts = thresholds.check(queues, producers, settings.status_max_lag_s)
    return StatusReport(
        generated_at=now,
        max_lag_s=settings.status_max_lag_s,
        queues=queues,
        producers=producers,
        runs={source: [_run(r) for r in history.latest(source, runs)] for source in SOURCES},
        rejections=_rejections(client, latest),
        dead_letters=_dead_letters(dead, latest),
        conflicts=_conflicts(client, latest),
        limits=_limits(client, settings),
        counters=_counters(client),
        events=_events(client, settings),
        alerts=alerts,
        exit_code=thresholds.exit_code(alerts),
    )


def _events(client: redis.Redis, settings: Settings) -> EventsStatus:
    outbox = Outbox(client)
    return EventsStatus(enabled=settings.events_url is not None, outbox=outbox.length(), trimmed=outbox.trimmed())


def producer_status(client: redis.Redis, history: RunHistory, source: str, now: float) -> ProducerStatus:
    """One producer's cursor, lock and last successful poll (also read by the alerts)."""
    last = history.last(source)
    cursor = CursorStore(client, source).get()
    end = last.started_at + last.duration_s if last is not None else None
    return ProducerStatus(
        source=source,
        running=bool(client.exists(keys.producer_lock(source))),
        cursor=cursor.isoformat() if cursor is not None else None,
        last_poll_end=end,
        lag_s=max(0.0, now - end) if end is not None else None,
        last_run_id=last.run_id if last is not None else None,
    )


def _rejections(client: redis.Redis, latest: int) -> RejectionSummary:
    records = RejectionStore(client).list()
    return RejectionSummary(
        total=len(records),
        by_reason=_sorted_counts(Counter(redact(r.reason) for r in records)),
        latest=[
            RejectionView(source=r.source, contact_id=_id(r.contact_id), field=r.field, reason=redact(r.reason),
                          last_seen=r.last_seen)
            for r in records[:latest]
        ],
    )


def _dead_letters(store: DeadLetterStore, latest: int) -> DeadLetterSummary:
    return DeadLetterSummary(
        total=store.count(),
        by_queue=store.counts(),
        latest=[
            DeadLetterView(
                id=letter.id, queue=letter.queue, actor=letter.actor,
                entity_key=redact(letter.entity_key) if letter.entity_key else None,
                reason=letter.reason, error_class=letter.error_class,
                error=redact(letter.error)[:_ERROR_MAX], attempts=letter.attempts, failed_at=letter.failed_at,
            )
            for letter in store.list(limit=latest)
        ],
    )


def _conflicts(client: redis.Redis, latest: int) -> ConflictSummary:
    records = ConflictStore(client).list()
    return ConflictSummary(
        total=len(records),
        by_rule=_sorted_counts(Counter(r.conflict.rule for r in records)),
        latest=[
            ConflictView(contact_id=redact(r.conflict.contact_id), field=r.conflict.field, rule=r.conflict.rule,
                         winner=r.conflict.winner, at=r.at)
            for r in records[:latest]
        ],
    )


def _limits(client: redis.Redis, settings: Settings) -> Limits:
    # Redis's clock, as the rate limiter itself uses it.
    seconds, micros = client.time()
    tat = client.get(_SPOTLER_RATE_KEY)
    ahead_us = int(keys.as_bytes(tat)) - (seconds * 1_000_000 + micros) if tat is not None else 0
    cap = ConcurrencyCap(client, "afas", settings.afas_max_parallel)
    return Limits(
        spotler_rate_per_s=settings.spotler_rate_per_s,
        spotler_booked_ahead_s=max(0, ahead_us) / 1_000_000,
        afas_in_use=cap.in_use(),
        afas_limit=settings.afas_max_parallel,
    )


def _counters(client: redis.Redis) -> dict[str, int]:
    raw: dict[Any, Any] = client.hgetall(keys.COUNTERS)
    return {_text(k): int(v) for k, v in sorted(raw.items(), key=lambda kv: _text(kv[0]))}


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    """Largest first, then by name, so reports and pages list them in a stable order."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _run(run: PollResult) -> PollResult:
    reasons = {redact(reason): n for reason, n in run.rejected_by_reason.items()}
    return msgspec.structs.replace(run, rejected_by_reason=reasons)


def _id(contact_id: str | None) -> str | None:
    return redact(contact_id) if contact_id is not None else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
