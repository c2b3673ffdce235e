"""What the end-to-end tests compare: AFAS's rows, mapped, against Spotler's contacts."""

from __future__ import annotations

from typing import Any

import msgspec
import redis

from connector.schemas.events import Value
from connector.schemas.mapping import Mapping, load_mapping
from connector.schemas.spotler import Contact
from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.sync.from_spotler import spotler_values as from_spotler
from connector.sync.rows import ContactRecord, Rejection

MAPPING: Mapping = load_mapping(None)


def afas_expectation(stack: Stack) -> tuple[dict[str, ContactRecord], dict[str, Rejection]]:
    """Every row of the sandbox's GetConnector, decoded the way the producer decodes it."""
    return stack.afas_records(MAPPING)


def spotler_contacts(stack: Stack) -> dict[str, dict[str, Any]]:
    return {c["externalId"]: c for c in stack.spotler("GET", "contacts")}


def spotler_values(contact: dict[str, Any]) -> dict[str, Value]:
    """A Spotler contact (as the control API shows it) in the mapping's Spotler-side names."""
    return from_spotler(msgspec.convert(contact, Contact), MAPPING)


def wait_for_quiet(
    stack: Stack, client: redis.Redis, *, polls_after: int = 1, timeout_s: float = 300,
    sources: tuple[str, ...] = ("afas",),
) -> None:
    """Wait until each producer finished ``polls_after`` more polls and the queues are drained."""
    history = RunHistory(client)
    for source in sources:
        seen = len(history.latest(source, limit=10_000))
        wait_until(lambda s=source, n=seen: len(history.latest(s, limit=10_000)) >= n + polls_after,  # type: ignore[misc]
                   timeout_s)
    wait_until(lambda: outstanding(client, "spotler") + outstanding(client, "afas") == 0, timeout_s, interval_s=0.2)


def redis_text(client: redis.Redis) -> bytes:
    """Every key and every value of every type in the database, as one byte string (to search it)."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"hash":
            out += [b for kv in client.hgetall(key).items() for b in kv]
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(client.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            out += [b for _, fields in client.xrange(key) for kv in fields.items() for b in kv]
        elif kind != b"none":  # gone between the SCAN and the read
            raise AssertionError(f"key {key!r} of type {kind!r}: read it too")
    return b"\n".join(out)
