"""The per-contact journal: every step the link took for one contact, newest last.

Steps (typed shapes below, stored without names):

- ``Seen``: a producer saw a change in ``source`` (its stamp, the fields that
  moved) and decided: ``to_spotler`` / ``to_afas`` (enqueued), ``echo`` (our own
  write coming back: suppressed), ``agreed`` (both systems already hold the
  values: recorded, nothing written), ``bounce`` (a hard bounce for AFAS);
- ``Settled``: a conflict and the rule that settled it;
- ``Rejected``: a row or feed item refused (the rule's wording, never the value);
- ``Wrote``: a worker's write into ``target`` (``entity``: ``contact/list`` or the
  AFAS connectors it PUT), its outcome (``ok``, ``superseded``: the ordering check
  left it out, something newer won; ``refused``; ``retry``; ``failed``: the attempt
  raised and the retry policy takes over) and the attempt;
- ``DeadLettered`` and ``Replayed``: a dead letter naming the contact, and its replay.

A change seen and the decision about it are one step: they happen in the same
moment, in the same process. A step equal to one the journal already holds
(the same change read again in an overlapping poll window, the same rejection
in every poll) is not added again, so a journal shows what happened, not how
often it was read.

Redis: ``connector:journal:<ContactId>``, one string per contact: frames of
``length (1 byte) · epoch seconds (4 bytes, big-endian) · msgpack array``,
fields named by their position in ``connector:fields`` (the agreed state's list
of names, a name not in it yet by itself). A string of its own per contact, not
a bucket like the agreed state: a journal is appended to by producers and
workers alike, and one small key per contact stays within the budget (see
BENCHMARKS.md). Bounds, both enforced by the one script that appends: at most
``JOURNAL_MAX_ENTRIES`` steps (the oldest go first) and none older than
``JOURNAL_RETENTION_DAYS`` (the key expires that long after its last step, and
reads skip older frames). ``JOURNAL_MAX_ENTRIES=0`` turns the journal off:
nothing is built or written. Steps hold ids, field names, rules and reasons run
through the redaction policy: no value. ``connector forget`` erases the key.

Journalling is never on the sync's critical path: it runs after the step it
describes, and an error is logged and counted (``journal_unrecorded``), never
raised (``Journal.append``).
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

import msgspec
import redis

from connector.errors import ConfigError
from connector.redaction import redact
from connector.settings import Settings
from connector.state.keys import COUNTERS, FIELDS, PREFIX, as_bytes

__all__ = [
    "DeadLettered",
    "Entry",
    "Journal",
    "Rejected",
    "Replayed",
    "Seen",
    "Settled",
    "Step",
    "Wrote",
    "describe",
    "journal_key",
]

log = logging.getLogger(__name__)

System = Literal["afas", "spotler"]
Outcome = Literal["ok", "superseded", "refused", "retry", "failed", "forgotten"]
MAX_TEXT = 80  # characters of a reason or detail kept in a step


def journal_key(contact_id: str) -> str:
    return f"{PREFIX}:journal:{contact_id}"


class Seen(msgspec.Struct, frozen=True, array_like=True, tag=1):
    source: System
    stamp: int  # the source's stamp of the change, epoch ms (0: none)
    fields: list[str]
    decision: Literal["to_spotler", "to_afas", "echo", "agreed", "bounce"]


class Settled(msgspec.Struct, frozen=True, array_like=True, tag=2):
    field: str
    rule: str
    winner: System


class Rejected(msgspec.Struct, frozen=True, array_like=True, tag=3):
    source: str
    field: str
    reason: str


class Wrote(msgspec.Struct, frozen=True, array_like=True, tag=4):
    target: System
    entity: str  # contact/list, or the AFAS connectors (KnContact,KnPerson,…)
    fields: list[str]
    outcome: Outcome
    attempt: int = 1
    detail: str = ""  # an error class, a refusal code, "re-assert"


class DeadLettered(msgspec.Struct, frozen=True, array_like=True, tag=5):
    letter_id: str
    queue: str
    reason: str


class Replayed(msgspec.Struct, frozen=True, array_like=True, tag=6):
    letter_id: str


Step = Seen | Settled | Rejected | Wrote | DeadLettered | Replayed


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One step as read back: when (epoch seconds) and what."""

    at: int
    step: Step


# What a stored step looks like: field names as positions in connector:fields where known.
_Packed = list[int | str | list[int | str]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Step)
_raw = msgspec.msgpack.Decoder(list[Any])
_HEAD = struct.Struct(">BI")
_FIELDS_AT = 3

# KEYS[1] the journal; ARGV: max entries, oldest second kept, ttl seconds, new frames.
# A frame whose step (the bytes after its time) the journal already holds is skipped.
_APPEND = """
local old = redis.call('GET', KEYS[1]) or ''
local max, cutoff, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local frames, steps, pos, dropped = {}, {}, 1, 0
while pos <= #old do
  local n = string.byte(old, pos)
  local frame = string.sub(old, pos, pos + n)
  local t = ((string.byte(frame, 2) * 256 + string.byte(frame, 3)) * 256 + string.byte(frame, 4)) * 256
            + string.byte(frame, 5)
  if t >= cutoff then
    frames[#frames + 1] = frame
    steps[string.sub(frame, 6)] = true
  else
    dropped = dropped + 1
  end
  pos = pos + n + 1
end
local added = 0
for i = 4, #ARGV do
  local step = string.sub(ARGV[i], 6)
  if not steps[step] then
    frames[#frames + 1] = ARGV[i]
    steps[step] = true
    added = added + 1
  end
end
if added == 0 and dropped == 0 then return 0 end
local first = math.max(1, #frames - max + 1)
if first > #frames then
  redis.call('DEL', KEYS[1])
  return added
end
redis.call('SET', KEYS[1], table.concat(frames, '', first, #frames), 'EX', ttl)
return added
"""


class Journal:
    """The journals in Redis; ``max_entries`` and ``retention_s`` bound each one."""

    def __init__(self, client: redis.Redis, *, max_entries: int = 50, retention_s: float = 30 * 86400.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1 (0 is no journal: for_process gives None)")
        self.client = client
        self.max_entries = max_entries
        self.retention_s = retention_s
        self._positions: dict[str, int] = {}
        self._names: list[str] = []
        self._script = client.register_script(_APPEND)
        self._reloaded = False

    @classmethod
    def for_process(cls, client: redis.Redis) -> Journal | None:
        """This process's journal on ``client``; None when ``JOURNAL_MAX_ENTRIES`` is 0 (nothing is kept)."""
        bounds = process_bounds()
        if bounds is None:
            return None
        return _journal_of(client, *bounds)

    # -- writing ------------------------------------------------------------------------------------

    def append(self, steps: Iterable[tuple[str, Step]], *, now: float | None = None) -> int:
        """Add (contact, step) pairs, each contact's in order; returns how many were new. Never raises."""
        pairs = [(cid, step) for cid, step in steps if cid]
        if not pairs:
            return 0
        try:
            return self._append(pairs, time.time() if now is None else now)
        except Exception as exc:
            log.warning("journal: %d steps not recorded (%s: %s)", len(pairs), type(exc).__name__,
                        redact(str(exc))[:200])
            try:
                self.client.hincrby(COUNTERS, "journal_unrecorded", len(pairs))
            except Exception:  # Redis itself is gone: the sync's own handling says so
                log.debug("journal_unrecorded not counted", exc_info=True)
            return 0

    def _append(self, pairs: list[tuple[str, Step]], now: float) -> int:
        at = int(now)
        self._reloaded = False  # names unknown yet are looked up once per call, not once per step
        by_contact: dict[str, list[bytes]] = {}
        for cid, step in pairs:
            by_contact.setdefault(cid, []).append(self._frame(at, step))
        ttl = max(1, int(self.retention_s))
        cutoff = max(0, int(now - self.retention_s))
        pipe = self.client.pipeline(transaction=False)
        for cid, frames in by_contact.items():
            # EVALSHA: the script's text would otherwise travel with every contact's step.
            self._script(keys=[journal_key(cid)], args=[self.max_entries, cutoff, ttl, *frames], client=pipe)
        return sum(int(n) for n in pipe.execute())

    def _frame(self, at: int, step: Step) -> bytes:
        body = _encoder.encode(self._pack(step))
        keep = 40
        while len(body) > 250:  # a frame's length is one byte: long texts and field lists are cut, never the step
            step, keep = _shortened(step, keep), keep // 2
            body = _encoder.encode(self._pack(step))
        return _HEAD.pack(len(body) + 4, at & 0xFFFFFFFF) + body

    def _pack(self, step: Step) -> _Packed:
        packed = cast(_Packed, msgspec.to_builtins(step))
        if isinstance(step, Seen | Wrote) and step.fields:  # both hold their fields after tag and two more
            packed[_FIELDS_AT] = [self._position(name) for name in step.fields]
        return packed

    def _position(self, name: str) -> int | str:
        if name not in self._positions and not self._reloaded:
            self._load_names()
            self._reloaded = True
        return self._positions.get(name, name)

    def _load_names(self) -> None:
        names = [as_bytes(n).decode() for n in cast(list[bytes], self.client.lrange(FIELDS, 0, -1))]
        self._names = names
        self._positions = {n: i for i, n in enumerate(names)}

    # -- reading ------------------------------------------------------------------------------------

    def entries(self, contact_id: str, *, now: float | None = None) -> list[Entry]:
        """The contact's steps, oldest first (none older than the retention)."""
        raw = self.client.get(journal_key(contact_id))
        if not raw:
            return []
        data = as_bytes(cast(bytes, raw))
        cutoff = int((time.time() if now is None else now) - self.retention_s)
        found: list[Entry] = []
        pos = 0
        while pos < len(data):
            n, at = _HEAD.unpack_from(data, pos)
            body = data[pos + 5: pos + 1 + n]
            pos += n + 1
            if at < cutoff:
                continue
            found.append(Entry(at=at, step=self._unpack(body)))
        return found

    def _unpack(self, body: bytes) -> Step:
        packed = _raw.decode(body)
        if any(isinstance(v, list) and any(isinstance(x, int) for x in v) for v in packed):
            if not self._names:
                self._load_names()
            packed = [[self._name(x) for x in v] if isinstance(v, list) else v for v in packed]
        return cast(Step, msgspec.convert(packed, Step))

    def _name(self, item: object) -> str:
        if isinstance(item, int):
            if item >= len(self._names):
                self._load_names()
            return self._names[item] if item < len(self._names) else f"field#{item}"
        return str(item)

    def erase(self, contact_ids: Sequence[str]) -> int:
        """Remove the contacts' journals (``connector forget``); returns how many there were."""
        return int(self.client.delete(*[journal_key(c) for c in contact_ids])) if contact_ids else 0

    def size(self, contact_id: str) -> int:
        return int(self.client.strlen(journal_key(contact_id)))


def _shortened(step: Step, keep: int) -> Step:
    for name in ("reason", "detail", "rule", "entity"):
        if len(getattr(step, name, "")) > 24:
            step = msgspec.structs.replace(step, **{name: getattr(step, name)[:24]})
    if isinstance(step, Seen | Wrote) and len(step.fields) > keep:
        step = msgspec.structs.replace(step, fields=[*step.fields[:keep], "…"])
    return step


def text(value: str) -> str:
    """A reason or detail as a step keeps it: redacted, at most ``MAX_TEXT`` characters."""
    return redact(value)[:MAX_TEXT]


_DECISIONS = {
    "to_spotler": "enqueued for Spotler", "to_afas": "enqueued for AFAS", "echo": "echo of our own write, suppressed",
    "agreed": "both systems already hold it: recorded, nothing written", "bounce": "hard bounce enqueued for AFAS",
}
_SYSTEMS = {"afas": "AFAS", "spotler": "Spotler"}


def describe(step: Step) -> str:
    """One line for a timeline."""
    if isinstance(step, Seen):
        fields = f" ({', '.join(step.fields)})" if step.fields else ""
        return f"change seen in {_SYSTEMS[step.source]}{fields}: {_DECISIONS[step.decision]}"
    if isinstance(step, Settled):
        return f"conflict on {step.field} settled by {step.rule}: {_SYSTEMS.get(step.winner, step.winner)} wins"
    if isinstance(step, Rejected):
        return f"rejected ({step.source}, field {step.field}): {step.reason}"
    if isinstance(step, Wrote):
        fields = f" ({', '.join(step.fields)})" if step.fields else ""
        detail = f": {step.detail}" if step.detail else ""
        return (f"write into {_SYSTEMS[step.target]} {step.entity}{fields}, attempt {step.attempt}: "
                f"{step.outcome}{detail}")
    if isinstance(step, DeadLettered):
        return f"dead-lettered ({step.reason}) on queue {step.queue} as {step.letter_id}"
    return f"dead letter {step.letter_id} replayed"


_journals: dict[int, Journal] = {}


def _journal_of(client: redis.Redis, max_entries: int, retention_s: float) -> Journal:
    """One journal per client (it caches the field positions); a process has a client or two."""
    journal = _journals.get(id(client))
    if journal is None or journal.client is not client:
        journal = _journals[id(client)] = Journal(client, max_entries=max_entries, retention_s=retention_s)
    return journal


@functools.cache
def process_bounds() -> tuple[int, float] | None:
    """(``JOURNAL_MAX_ENTRIES``, retention in s), or None when the journal is off; read once per process."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:  # the process itself has refused to start on this by now
        log.warning("journal not kept: %s", exc)
        return None
    if settings.journal_max_entries <= 0:
        return None
    return settings.journal_max_entries, settings.journal_retention_days * 86400
