"""Every Redis key the connector owns, named in one place under one prefix."""

from __future__ import annotations

PREFIX = "connector"


def as_bytes(value: bytes | str) -> bytes:
    """Redis answers bytes unless a client decodes responses; accept both."""
    return value.encode() if isinstance(value, str) else value


def cursor(source: str) -> str:
    return f"{PREFIX}:cursor:{source}"


def agreed(contact_id: str) -> str:
    return f"{PREFIX}:agreed:{contact_id}"


def producer_lock(source: str) -> str:
    return f"{PREFIX}:lock:producer:{source}"


REJECTIONS = f"{PREFIX}:rejections"            # hash: "<source>:<contact>:<field>" -> record
REJECTIONS_BY_TIME = f"{PREFIX}:rejections:t"  # zset: same member -> epoch seconds
COUNTERS = f"{PREFIX}:counters"                # hash of running totals (synced, unchanged, ...)
