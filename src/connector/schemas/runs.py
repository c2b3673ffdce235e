"""Run history records."""

from __future__ import annotations

import msgspec

__all__ = ["PollResult"]


class PollResult(msgspec.Struct, kw_only=True):
    """What one poll read, changed, left unchanged, rejected and enqueued."""

    run_id: str
    source: str = "afas"
    kind: str = "poll"
    started_at: float
    duration_s: float = 0.0
    read: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    enqueued_messages: int = 0
    already_pending: int = 0
    gone: int = 0  # full passes only: synced contacts the GetConnector no longer lists
    rejected_by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    cursor_from: str | None = None
    cursor_to: str | None = None
