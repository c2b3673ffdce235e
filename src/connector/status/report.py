"""The shape of a status report: what ``connector status --json`` prints and ``/status.json`` serves.

Times are Unix seconds (floats), ages and lags seconds. Nothing in a report is
personal data: records are shown by id, field and reason, never by e-mail
address or field value.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from connector.schemas.runs import PollResult

__all__ = [
    "Alert",
    "AlertKind",
    "ConflictSummary",
    "ConflictView",
    "DeadLetterSummary",
    "DeadLetterView",
    "EventsStatus",
    "Limits",
    "ProducerStatus",
    "QueueStatus",
    "RejectionSummary",
    "RejectionView",
    "StatusReport",
]

AlertKind = Literal["dead_letters", "producer_lag", "never_polled"]


class QueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One Dramatiq queue: messages by state, dead letters, the oldest message's age."""

    name: str
    ready: int  # waiting in the queue for a worker
    delayed: int  # retries and rate-limit waits scheduled for later
    in_flight: int  # fetched by a worker (being processed or prefetched), not yet acknowledged
    dead_letters: int  # in the connector's dead-letter store
    broker_dead: int  # in Dramatiq's own dead-letter queue, not yet taken over by the store
    oldest_age_s: float | None  # since the first enqueue of the oldest outstanding message


class ProducerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One producer: its cursor, its last successful poll and how long ago that ended."""

    source: str
    running: bool  # a producer process holds the lock
    cursor: str | None  # ISO timestamp the next poll starts from
    last_poll_end: float | None
    lag_s: float | None  # now minus last_poll_end; None when it never polled
    last_run_id: str | None


class RejectionView(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    contact_id: str | None
    field: str
    reason: str
    last_seen: float


class RejectionSummary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_reason: dict[str, int]
    latest: list[RejectionView]


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter without its payload (which holds personal data)."""

    id: str
    queue: str
    actor: str
    entity_key: str | None
    reason: str
    error_class: str
    error: str  # the last error, e-mail addresses masked, shortened
    attempts: int
    failed_at: float


class DeadLetterSummary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_queue: dict[str, int]
    latest: list[DeadLetterView]


class ConflictView(msgspec.Struct, frozen=True, kw_only=True):
    """A settled conflict without the values (one of them may be an e-mail address)."""

    contact_id: str
    field: str
    rule: str
    winner: str
    at: float


class ConflictSummary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_rule: dict[str, int]
    latest: list[ConflictView]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The Redis-wide limits right now."""

    spotler_rate_per_s: float
    spotler_booked_ahead_s: float  # how far ahead Spotler call slots are already taken
    afas_in_use: int  # AFAS calls in flight across all processes
    afas_limit: int


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """A crossed threshold: what, about which queue or producer, and the exit status it sets."""

    kind: AlertKind
    subject: str
    exit_code: int
    message: str


class EventsStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Events out: whether this deployment publishes them, and what waits for the bus."""

    enabled: bool  # EVENTS_URL is set
    outbox: int  # events recorded, not yet accepted by the bus
    trimmed: int  # events the EVENTS_OUTBOX_MAX bound dropped, ever


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    generated_at: float
    max_lag_s: float
    queues: list[QueueStatus]
    producers: list[ProducerStatus]
    runs: dict[str, list[PollResult]]  # per source, newest first
    rejections: RejectionSummary
    dead_letters: DeadLetterSummary
    conflicts: ConflictSummary
    limits: Limits
    counters: dict[str, int]
    alerts: list[Alert] = msgspec.field(default_factory=list)
    events: EventsStatus | None = None
    exit_code: int = 0  # 0 healthy, 2 dead letters, 3 a producer lags or never polled
