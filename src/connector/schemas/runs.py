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
    in_flight: int = 0  # contacts left to the next poll: a worker was writing them into the polled system
    gone: int = 0  # full passes only: synced contacts the GetConnector no longer lists
    deletions_held: bool = False  # full passes only: too many gone to unsubscribe without --yes
    forgotten: int = 0  # rows or feed items of forgotten contacts (connector forget), skipped
    retention_forgotten: int = 0  # departed contacts forgotten after FORGET_AFTER_DAYS
    # What the workers made of this poll's messages so far (filled in when the history is read):
    written: int = 0  # changes written to the other system
    superseded: int = 0  # fields not written because something newer had been applied (or was on its way)
    rejected_by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    cursor_from: str | None = None
    cursor_to: str | None = None
