"""The consent audit trail: every permission bit, AFAS block and hard bounce the link applied.

A record says, for one contact: what changed (``kind`` permission / blocked /
hard_bounce, the field, ``old`` → ``new``), the system it came from and that
system's stamp of the change (``source_stamp``, epoch ms: the AFAS row's
modification date, Spotler's ``lastChanged`` or the bounce's date), when the
link applied it to the other system (``applied_at``, epoch ms) and with what
result:

- ``written``: the target took it (for a permission bit: the agreed state now
  holds the value written);
- ``superseded``: the ordering check left it out, something newer won (a
  superseded change is recorded, so the trail shows an opt-in that did not
  land and why);
- ``rejected``: the target refused the contact (Spotler's per-contact error),
  or a hard bounce the mapping sends nowhere.

What is recorded: the permission bits of a change written, superseded or
refused; AFAS's blocked flag when it flips as seen by the Spotler worker (a
set of the blocked contacts, ``connector:consent:blocked``, tells a new block
from one written again); a hard bounce each time it is written to AFAS (it is
an event, not a field). A change of a forgotten contact records nothing.
Records hold ids, field names, booleans and times: no e-mail address, no name.

Redis: ``connector:consent:c:<ContactId>`` (a sorted set of the contact's
records, packed msgpack arrays, by ``applied_at``; a JSON member from before
the packed form is read as well), ``connector:consent:t`` (ContactId → its
latest record's time, for an export by date) and ``connector:consent:first``
(ContactId → its oldest record's time, for the retention). Records older than
``CONSENT_RETENTION_DAYS`` are dropped by ``expire`` (the workers call it as
they record; reads never show them); ``erase`` (``connector forget``) removes
a contact's trail and its blocked mark.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Literal, cast

import msgspec
import redis

from connector.state.keys import PREFIX, as_bytes

__all__ = ["CONSENT", "ConsentRecord", "ConsentTrail", "consent_key"]

CONSENT = f"{PREFIX}:consent"
LATEST = f"{CONSENT}:t"
FIRST = f"{CONSENT}:first"
BLOCKED = f"{CONSENT}:blocked"
_EXPIRE_BATCH = 500  # contacts trimmed per call: a backlog is worked off over the next calls

Kind = Literal["permission", "blocked", "hard_bounce"]
System = Literal["afas", "spotler"]
Result = Literal["written", "superseded", "rejected"]


def consent_key(contact_id: str) -> str:
    return f"{CONSENT}:c:{contact_id}"


class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One consent change as the link applied it (ids, booleans and times only)."""

    contact_id: str
    kind: Kind
    field: str  # ``permissions.<bit>``, ``blocked`` or ``bounce``
    new: bool
    old: bool | None = None  # None: not known (a contact new to the target, a bounce)
    bit: int | None = None
    source: System
    source_stamp: int  # the source system's stamp of the change, epoch ms (0: unknown)
    target: System
    applied_at: int  # when the link applied it to the target, epoch ms
    result: Result


class _Packed(msgspec.Struct, frozen=True, array_like=True):
    """A record as stored: codes for the words, no contact id (it is the key), no field name its kind implies.

    About 30 bytes, under the 64 of ``zset-max-listpack-value``, so a contact's trail stays a
    compact listpack (a record as JSON, over 200 bytes, turns it into a skiplist: about 1.5 kB
    per contact after an initial sync; BENCHMARKS.md).
    """

    kind: int
    field: str  # "" when it is the kind's own (permissions.<bit>, blocked, bounce)
    new: bool
    old: bool | None
    bit: int | None
    source: int
    source_stamp: int
    target: int
    applied_at: int
    result: int


_KINDS: tuple[Kind, ...] = ("permission", "blocked", "hard_bounce")
_SYSTEMS: tuple[System, ...] = ("afas", "spotler")
_RESULTS: tuple[Result, ...] = ("written", "superseded", "rejected")
_packer = msgspec.msgpack.Encoder()
_unpack = msgspec.msgpack.Decoder(_Packed).decode
_decode_json = msgspec.json.Decoder(ConsentRecord).decode  # records stored before the packed form


def _implied_field(kind: str, bit: int | None) -> str:
    return f"permissions.{bit}" if kind == "permission" else "blocked" if kind == "blocked" else "bounce"


def _encode(r: ConsentRecord) -> bytes:
    implied = _implied_field(r.kind, r.bit)
    return _packer.encode(_Packed(
        kind=_KINDS.index(r.kind), field="" if r.field == implied else r.field, new=r.new, old=r.old, bit=r.bit,
        source=_SYSTEMS.index(r.source), source_stamp=r.source_stamp, target=_SYSTEMS.index(r.target),
        applied_at=r.applied_at, result=_RESULTS.index(r.result)))


def _decode(contact_id: str, member: bytes) -> ConsentRecord:
    if member[:1] == b"{":
        return _decode_json(member)
    p = _unpack(member)
    kind = _KINDS[p.kind]
    return ConsentRecord(contact_id=contact_id, kind=kind, field=p.field or _implied_field(kind, p.bit), new=p.new,
                         old=p.old, bit=p.bit, source=_SYSTEMS[p.source], source_stamp=p.source_stamp,
                         target=_SYSTEMS[p.target], applied_at=p.applied_at, result=_RESULTS[p.result])


class ConsentTrail:
    """The trail in Redis; ``retention_s`` bounds what is kept and shown."""

    def __init__(self, client: redis.Redis, *, retention_s: float = 730 * 86400.0) -> None:
        self.client = client
        self.retention_s = retention_s

    def _cutoff_ms(self, now: float | None) -> int:
        return int(((time.time() if now is None else now) - self.retention_s) * 1000)

    def record(self, records: Sequence[ConsentRecord]) -> None:
        """Add ``records`` (one transaction)."""
        if not records:
            return
        pipe = self.client.pipeline(transaction=True)
        for r in records:
            pipe.zadd(consent_key(r.contact_id), {_encode(r): r.applied_at})
            pipe.zadd(LATEST, {r.contact_id: r.applied_at}, gt=True)
            pipe.zadd(FIRST, {r.contact_id: r.applied_at}, lt=True)
        pipe.execute()

    def blocked_flips(self, blocked: Iterable[tuple[str, bool]]) -> dict[str, bool]:
        """Of (contact, blocked now) written to Spotler, the contacts whose flag flipped, with the new value."""
        pairs = list(dict(blocked).items())
        if not pairs:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for cid, flag in pairs:
            if flag:
                pipe.sadd(BLOCKED, cid)
            else:
                pipe.srem(BLOCKED, cid)
        return {cid: flag for (cid, flag), changed in zip(pairs, pipe.execute(), strict=True) if changed}

    def timeline(self, contact_id: str, *, now: float | None = None) -> list[ConsentRecord]:
        """The contact's records, oldest first."""
        raw = cast(list[bytes], self.client.zrangebyscore(consent_key(contact_id), self._cutoff_ms(now), "+inf"))
        return [_decode(contact_id, as_bytes(m)) for m in raw]

    def since(self, since_ms: int, *, now: float | None = None) -> list[ConsentRecord]:
        """Every contact's records applied at or after ``since_ms``, by time (then contact)."""
        low = max(since_ms, self._cutoff_ms(now))
        contacts = [as_bytes(c).decode() for c in cast(list[bytes], self.client.zrangebyscore(LATEST, low, "+inf"))]
        if not contacts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for cid in contacts:
            pipe.zrangebyscore(consent_key(cid), low, "+inf")
        found = [_decode(cid, as_bytes(m)) for cid, members in zip(contacts, pipe.execute(), strict=True)
                 for m in members]
        return sorted(found, key=lambda r: (r.applied_at, r.contact_id))

    def expire(self, now: float | None = None) -> int:
        """Drop records older than the retention; returns how many."""
        cutoff = self._cutoff_ms(now)
        old = self.client.zrangebyscore(FIRST, "-inf", f"({cutoff}", start=0, num=_EXPIRE_BATCH)
        contacts = [as_bytes(c).decode() for c in cast(list[bytes], old)]
        if not contacts:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for cid in contacts:
            pipe.zremrangebyscore(consent_key(cid), "-inf", f"({cutoff}")
            pipe.zrange(consent_key(cid), 0, 0, withscores=True)
        answers = pipe.execute()
        dropped = 0
        pipe = self.client.pipeline(transaction=False)
        for n, cid in enumerate(contacts):
            dropped += int(answers[2 * n])
            oldest = answers[2 * n + 1]
            if oldest:
                pipe.zadd(FIRST, {cid: oldest[0][1]})
            else:
                pipe.zrem(FIRST, cid)
                pipe.zrem(LATEST, cid)
        pipe.execute()
        return dropped

    def erase(self, contact_ids: Sequence[str]) -> int:
        """Remove the contacts' trails and blocked marks (``connector forget``); returns the records removed."""
        if not contact_ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        for cid in contact_ids:
            pipe.zcard(consent_key(cid))
            pipe.delete(consent_key(cid))
        pipe.zrem(LATEST, *contact_ids)
        pipe.zrem(FIRST, *contact_ids)
        pipe.srem(BLOCKED, *contact_ids)
        answers = pipe.execute()
        return sum(int(answers[2 * n]) for n in range(len(contact_ids)))
