"""Producer cursors: the poll start time of the last complete poll, as an aware datetime."""

from __future__ import annotations

from datetime import datetime

import redis

from connector.state import keys

__all__ = ["CursorStore"]


class CursorStore:
    def __init__(self, client: redis.Redis, source: str) -> None:
        self.client = client
        self.key = keys.cursor(source)

    def get(self) -> datetime | None:
        raw = self.client.get(self.key)
        return None if raw is None else datetime.fromisoformat(keys.as_bytes(raw).decode())

    def set(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("cursor must be timezone-aware")
        self.client.set(self.key, value.isoformat())

    def clear(self) -> None:
        self.client.delete(self.key)
