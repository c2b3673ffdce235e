"""The agreed state: per contact and field, the last value both systems hold, and since when.

Per contact (stored packed, see ``connector.state.layout``; read here as the
JSON object the layout's scripts hand out):

- ``f``: field → ``[value, stamp, into, owed]``: the value last applied, the
  source's change stamp it was applied with (epoch ms; it only grows, so it
  doubles as the field's version), the system it was last written into
  (``"s"`` Spotler, ``"a"`` AFAS, ``"b"`` both already held it) and whether the
  other system still owes a re-assert of it (see ``connector.state.ordering``);
- ``ps`` / ``pa``: changes enqueued for Spotler / for AFAS and not yet applied,
  field → ``[value, stamp, at]`` (``at``: when enqueued, epoch seconds);
- ``p`` / ``o``: the contact's AFAS person and organisation numbers;
- ``ws`` / ``wa``: when a write into Spotler / into AFAS was last committed
  (Redis's clock, epoch ms), so a producer can tell that what it read may be
  older than our own last write;
- ``st``: Spotler's ``lastChanged`` of the latest change seen there that was
  not our own write (the merge rules need it: ``connector.sync.merge``).

A state in an earlier form (a JSON string per contact, or from before
per-field stamps a msgpack map of values, which reads as the same values with
stamp 0) is read the same way, so an existing deployment carries on; the first
write of a contact stores it packed, and ``connector migrate`` packs them all.
``connector.state.ordering`` holds the atomic steps that change a state; this
module reads, lists and erases.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state import keys, layout

__all__ = ["PENDING_MAX_AGE_S", "AgreedStore", "ContactState", "FieldState", "Pending"]

# A pending change older than this is dead (dead-lettered, expired or lost): it no
# longer holds back other writes or counts as enqueued. Matches the queues' max age.
PENDING_MAX_AGE_S = 6 * 3600


class FieldState(msgspec.Struct, array_like=True, frozen=True):
    value: Value
    stamp: int = 0
    into: str = ""
    owed: int = 0


class Pending(msgspec.Struct, array_like=True, frozen=True):
    value: Value
    stamp: int
    at: int = 0


class ContactState(msgspec.Struct, frozen=True):
    f: dict[str, FieldState] = {}
    ps: dict[str, Pending] = {}
    pa: dict[str, Pending] = {}
    p: str | None = None
    o: str | None = None
    ws: int = 0
    wa: int = 0
    st: int = 0

    def written_since(self, into: str, moment_ms: int) -> bool:
        """A write into ``into`` was committed at or after ``moment_ms`` (Redis's clock)."""
        return (self.ws if into == "spotler" else self.wa) >= moment_ms

    @property
    def values(self) -> dict[str, Value]:
        """The agreed values, field by field."""
        return {name: field.value for name, field in self.f.items()}

    @property
    def synced(self) -> bool:
        """True once any value was agreed (a state may hold only pending changes)."""
        return bool(self.f)

    def stamp(self, name: str) -> int:
        field = self.f.get(name)
        return field.stamp if field is not None else 0

    def pending(self, into: str, now: float) -> dict[str, Pending]:
        """Live changes on their way into ``into`` ("spotler" or "afas")."""
        table = self.ps if into == "spotler" else self.pa
        return {n: p for n, p in table.items() if now - p.at < PENDING_MAX_AGE_S}


_decode = msgspec.json.Decoder(ContactState).decode
_BATCH = 1000  # contacts per read script: one call per batch, each a short step for Redis


class AgreedStore:
    """Reads, lists and erases the per-contact states (writes go through ``connector.state.ordering``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._read = client.register_script(layout.READ)
        self._erase = client.register_script(layout.ERASE)

    def states(self, contact_ids: Sequence[str]) -> list[ContactState | None]:
        found: list[ContactState | None] = []
        for start in range(0, len(contact_ids), _BATCH):
            ids = list(contact_ids[start:start + _BATCH])
            raw = self._read(keys=[keys.FIELDS, *(k for cid in ids for k in keys.state_keys(cid))], args=ids)
            found += [None if r is None else _decode(keys.as_bytes(r)) for r in raw]
        return found

    def state(self, contact_id: str) -> ContactState | None:
        return self.states([contact_id])[0]

    def get_many(self, contact_ids: Sequence[str]) -> list[dict[str, Value] | None]:
        """The agreed values of each contact, None where nothing was agreed yet."""
        return [s.values if s is not None and s.synced else None for s in self.states(contact_ids)]

    def get(self, contact_id: str) -> dict[str, Value] | None:
        return self.get_many([contact_id])[0]

    def ids(self) -> Iterator[str]:
        """Every ContactId with a state, packed or in the old form, each once (a SCAN)."""
        seen: set[str] = set()
        for pattern in (f"{keys.PREFIX}:states:*", f"{keys.PREFIX}:pending:*"):
            buckets = [keys.as_bytes(raw).decode() for raw in self.client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(buckets), _BATCH):
                pipe = self.client.pipeline(transaction=False)
                for key in buckets[start:start + _BATCH]:
                    pipe.hkeys(key)
                for key, fields in zip(buckets[start:start + _BATCH], pipe.execute(), strict=True):
                    for cid in keys.bucket_contacts(key, [keys.as_bytes(f) for f in fields]):
                        if cid not in seen:
                            seen.add(cid)
                            yield cid
        prefix = len(keys.agreed(""))
        for raw in self.client.scan_iter(match=keys.agreed("*"), count=1000):
            cid = keys.as_bytes(raw).decode()[prefix:]
            if cid not in seen:
                seen.add(cid)
                yield cid

    def contact_ids(self) -> list[str]:
        """Every contact the link has synced (a SCAN: for full passes, not for polls)."""
        ids = list(self.ids())
        synced: list[str] = []
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            synced += [cid for cid, s in zip(chunk, self.states(chunk), strict=True) if s is not None and s.synced]
        return synced

    def count(self) -> int:
        return sum(1 for _ in self.ids())

    def erase(self, contact_ids: Sequence[str]) -> int:
        """Delete the contacts' states in every form; returns how many had one."""
        erased = 0
        for start in range(0, len(contact_ids), _BATCH):
            ids = list(contact_ids[start:start + _BATCH])
            erased += int(self._erase(keys=[k for cid in ids for k in keys.state_keys(cid)], args=ids))
        return erased
