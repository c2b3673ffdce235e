"""Opt-ins sent and not yet committed: the one write whose undo the link cannot otherwise see.

A worker that dies between a write (an AFAS PUT, a Spotler upsert) and its
commit leaves the agreed state at the value from before the write, while the
system may hold the write. If someone there then opts the contact out again
(an AFAS user, the recipient), the system shows the agreed value: no edit, to
every reader. The redelivered opt-in would go in over that opt-out.

So a write that opts a contact in first records, per field, the value, when it
was sent and the field's agreed stamp then (``connector:doubt:<into>:<ContactId>``,
a hash that lives no longer than a retry can: 7 days). The commit clears it, and
so does a failure that shows the write did not land. A write that finds such a
mark, the field's agreed stamp unchanged, and the system showing the opt-out
with a change stamp after the send (beyond the clocks' margin), takes it as an
opt-out made after our opt-in landed: the opt-out wins ("opt-outs always win
over a stale opt-in") and is owed to the other system. Only opt-ins are marked:
an opt-out in doubt is simply written again, which is the safe direction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state import keys

__all__ = ["DOUBT_MARGIN_MS", "DOUBT_TTL_S", "Doubt", "WritesInDoubt", "undone"]

DOUBT_TTL_S = 7 * 86400  # a message is retried (or dead-lettered) within this


class Doubt(msgspec.Struct, array_like=True, frozen=True):
    value: Value
    sent_ms: int  # the worker's clock when the PUT went out
    base: int  # the field's agreed stamp then: once it moves, the mark is settled history


class WritesInDoubt:
    def __init__(self, client: redis.Redis, into: str) -> None:
        self.client = client
        self.into = into

    def mark(self, contact_id: str, values: Mapping[str, Value], sent_ms: int, bases: Mapping[str, int]) -> None:
        self.mark_many({contact_id: (values, bases)}, sent_ms)

    def mark_many(self, marks: Mapping[str, tuple[Mapping[str, Value], Mapping[str, int]]], sent_ms: int) -> None:
        """Per contact (values, the fields' agreed stamps), sent at ``sent_ms``: one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for cid, (values, bases) in marks.items():
            if values:
                key = keys.doubt(self.into, cid)
                pipe.hset(key, mapping={n: msgspec.msgpack.encode(Doubt(v, sent_ms, bases.get(n, 0)))
                                        for n, v in values.items()})
                pipe.expire(key, DOUBT_TTL_S)
        if len(pipe):
            pipe.execute()

    def marks(self, contact_id: str) -> dict[str, Doubt]:
        raw = self.client.hgetall(keys.doubt(self.into, contact_id))
        return {keys.as_bytes(n).decode(): msgspec.msgpack.decode(keys.as_bytes(v), type=Doubt)
                for n, v in raw.items()}

    def clear(self, contact_id: str, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.client.hdel(keys.doubt(self.into, contact_id), *names)

    def marks_many(self, contact_ids: Sequence[str]) -> list[dict[str, Doubt]]:
        pipe = self.client.pipeline(transaction=False)
        for cid in contact_ids:
            pipe.hgetall(keys.doubt(self.into, cid))
        return [{keys.as_bytes(n).decode(): msgspec.msgpack.decode(keys.as_bytes(v), type=Doubt)
                 for n, v in raw.items()} for raw in (pipe.execute() if contact_ids else [])]

    def clear_many(self, names: Mapping[str, Iterable[str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for cid, fields in names.items():
            if fields := list(fields):
                pipe.hdel(keys.doubt(self.into, cid), *fields)
        if len(pipe):
            pipe.execute()

    @staticmethod
    def erase(client: redis.Redis, contact_ids: Iterable[str]) -> int:
        """Delete the contacts' marks on both sides (``connector forget``); returns how many keys."""
        found = [keys.doubt(into, cid) for cid in contact_ids for into in ("spotler", "afas")]
        return int(client.delete(*found)) if found else 0


# AFAS stamps rows to the second, each system with its own clock: a change this much after the
# send is not our write.
DOUBT_MARGIN_MS = 2000


def undone(doubt: Doubt | None, ours: Value, agreed_stamp: int, value: Value, changed_ms: int) -> bool:
    """The system shows an opt-out (``value``, changed at ``changed_ms``) made after our unconfirmed opt-in.

    Only while nothing was committed for the field since the mark (its agreed stamp is still
    the mark's base): a mark that outlived its write must not hold back a later opt-in.
    """
    return (doubt is not None and doubt.value is True and ours is True and value is False
            and agreed_stamp == doubt.base and changed_ms > doubt.sent_ms + DOUBT_MARGIN_MS)
