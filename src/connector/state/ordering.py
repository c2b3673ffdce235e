"""Newer wins, per contact and field: the one atomic check every write goes through.

Every change carries, per field, the source's change stamp (AFAS modification
date, Spotler ``lastChanged``, epoch ms) and the *base*: the stamp of the
field's agreed state when the change was decided. A write of a field into a
system is **fresh** when

- no change of that field is on its way *out of* that system with a newer
  stamp (its producer saw a newer edit there: writing would overwrite it), and
- no newer change of that field is on its way into that system either, and
- the field's agreed state is still the change's base (nothing was applied
  since it was decided), or the change is newer than what was applied since.

Anything else is **superseded**: acknowledged, counted, never written. So a
retry, a redelivery, a dead-letter replay or a racing worker cannot put an
older value back, and a change recomputed against a newer base is applied,
never mistaken for a duplicate. Applying a field moves its stamp forward
(at least by one), so the stamp is also the field's version.

A writer holds a per-contact lease (``connector:lease:<ContactId>``) from the
check until the commit, so two workers never write one contact at once, and
the commit re-checks each field in the same atomic step that updates the
agreed state (``check`` and ``commit`` are Lua scripts).

A forgotten contact (a tombstone in ``connector:forgotten``, see
``connector.state.tombstones``) gets no lease and no state: ``check`` and
``commit`` answer *forgotten* for it and ``stage`` and ``settle`` write nothing,
in the same atomic step, so no late event re-creates what ``connector forget``
erased.

A field applied over a newer state that was last written *into the change's
own source* means that source may now hold our write instead of its own edit
(the edit landed there first, our write overwrote it): the commit marks the
field *owed* and the writer sends a re-assert of the winning value back into
the source, itself an ordered write. A redelivery of the same change reports
the debt again, so a worker that died between the commit and the re-assert
does not leave it unpaid.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import redis

from connector.schemas.events import FieldWrite, Value
from connector.state import keys, layout
from connector.state.agreed import PENDING_MAX_AGE_S

__all__ = ["Applied", "CommitItem", "ContactWrite", "FieldWrite", "Lease", "Ordering", "Owed", "Target", "Verdict"]

Target = Literal["spotler", "afas"]
_SCRIPT_BATCH = 500  # contacts per script call of the producers' steps (stage, settle, touch)
_CODE: dict[str, str] = {"spotler": "s", "afas": "a"}

_PRELUDE = layout.LUA + """
local function stamp_of(rec, name)
  local c = rec.f[name]
  if c then return c[2] end
  return 0
end
local function outgoing(rec, into)
  if into == 's' then return rec.pa end
  if into == 'a' then return rec.ps end
  return {}
end
local function incoming(rec, into)
  if into == 's' then return rec.ps end
  if into == 'a' then return rec.pa end
  return {}
end
local function fresh(rec, into, name, stamp, base, now, max_age)
  local p = outgoing(rec, into)[name]
  if p and (now - p[3]) < max_age and p[2] > stamp then return false end
  -- a newer change of the field on its way into the same system overtakes this one
  local q = incoming(rec, into)[name]
  if q and (now - q[3]) < max_age and q[2] > stamp then return false end
  local cs = stamp_of(rec, name)
  -- Recording what both systems hold writes nothing anywhere: only on the state it was decided on.
  if into == 'b' then return base == cs end
  if base < 0 or base == cs then return true end
  return stamp > cs
end
local function clear(tbl, name, stamp)
  local p = tbl[name]
  if p and p[2] <= stamp then tbl[name] = nil end
end
"""

# KEYS: field names, tombstones, then per contact its state's keys (``layout.contact``), then the leases.
# ARGV: token, lease ms, into, max age s, JSON [[[name, stamp, base]...]...], JSON [contact id...]
_CHECK = _PRELUDE + """
local now = tonumber(redis.call('TIME')[1])
local into, max_age = ARGV[3], tonumber(ARGV[4])
local ids = cjson.decode(ARGV[6])
local N = names_load(KEYS[1])
local out = {}
for i, fields in ipairs(cjson.decode(ARGV[5])) do
  local lk = KEYS[2 + 3 * #ids + i]
  if redis.call('ZSCORE', KEYS[2], ids[i]) then
    out[i] = {forgotten = 1}
  elseif not redis.call('SET', lk, ARGV[1], 'NX', 'PX', ARGV[2]) then
    out[i] = {busy = redis.call('PTTL', lk)}
  else
    local rec = load(contact(3, i, ids[i]), N)
    local ok, stale, owed = {}, {}, {}
    for _, f in ipairs(fields) do
      if fresh(rec, into, f[1], f[2], f[3], now, max_age) then ok[#ok + 1] = f[1] else stale[#stale + 1] = f[1] end
    end
    for name, c in pairs(rec.f) do
      if c[4] == 1 and c[3] == into then owed[#owed + 1] = {name, c[1], c[2]} end
    end
    out[i] = {fresh = ok, stale = stale, owed = owed}
  end
end
return cjson.encode(out)
"""

# KEYS: field names, tombstones, then per contact its state's keys, then the leases. ARGV: token, into,
# max age s, release 1/0, JSON [{w: [[name, value, stamp, base]...], d: [[name, stamp]...], p, o, id}...]
_COMMIT = _PRELUDE + """
local t = redis.call('TIME')
local now, now_ms = tonumber(t[1]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, into, max_age, release = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local other = ({s = 'a', a = 's'})[into] or ''
local items = cjson.decode(ARGV[5])
local N = names_load(KEYS[1])
local out = {}
for i, c in ipairs(items) do
  local lk = KEYS[2 + 3 * #items + i]
  if redis.call('ZSCORE', KEYS[2], c.id) then
    if release and token ~= '' and redis.call('GET', lk) == token then redis.call('DEL', lk) end
    out[i] = {forgotten = 1}
  else
    local at = contact(3, i, c.id)
    local rec = load(at, N)
    local own = ({s = rec.ps, a = rec.pa})[into] or {}
    local applied, late, owed = {}, {}, {}
    for _, w in ipairs(c.w) do
      local name, value, stamp, base = w[1], w[2], w[3], w[4]
      if fresh(rec, into, name, stamp, base, now, max_age) then
        local cur, cs = rec.f[name], stamp_of(rec, name)
        local owes = base >= 0 and base ~= cs and cur ~= nil and cur[3] == other and other ~= ''
        local new = math.max(stamp, cs + 1)
        rec.f[name] = {value, new, into, owes and 1 or 0}
        applied[#applied + 1] = name
        if owes then owed[#owed + 1] = {name, value, new} end
        clear(rec.ps, name, stamp)
        clear(rec.pa, name, stamp)
      else
        late[#late + 1] = name
        clear(own, name, stamp)
      end
    end
    -- When we last wrote into each system (Redis's clock): a producer's read older than that
    -- may show a value our write has since replaced.
    if #applied > 0 and into == 's' then rec.ws = now_ms end
    if #applied > 0 and into == 'a' then rec.wa = now_ms end
    for _, d in ipairs(c.d) do clear(own, d[1], d[2]) end
    if type(c.p) == 'string' then rec.p = c.p end
    if type(c.o) == 'string' then rec.o = c.o end
    save(at, rec, N)
    if release and token ~= '' and redis.call('GET', lk) == token then redis.call('DEL', lk) end
    out[i] = {applied = applied, late = late, owed = owed}
  end
end
return cjson.encode(out)
"""

# KEYS: field names, tombstones, then per contact its state's keys.
# ARGV: into, JSON [[[name, value, stamp]...]...], JSON [id...]
_STAGE = _PRELUDE + """
local now = tonumber(redis.call('TIME')[1])
local ids = cjson.decode(ARGV[3])
local N = names_load(KEYS[1])
for i, fields in ipairs(cjson.decode(ARGV[2])) do
  if not redis.call('ZSCORE', KEYS[2], ids[i]) then
    local at = contact(3, i, ids[i])
    local rec = load(at, N)
    local tbl = ARGV[1] == 's' and rec.ps or rec.pa
    for _, f in ipairs(fields) do
      local p = tbl[f[1]]
      if not p or p[2] <= f[3] then tbl[f[1]] = {f[2], f[3], now} end
    end
    save(at, rec, N)
  end
end
return #ids
"""

# KEYS: field names, then per contact its state's keys.
# ARGV: JSON [stamp...]: a Spotler change that was not our own write, JSON [id...]
_TOUCH = _PRELUDE + """
local ids = cjson.decode(ARGV[2])
local N = names_load(KEYS[1])
for i, stamp in ipairs(cjson.decode(ARGV[1])) do
  local at = contact(2, i, ids[i])
  local rec, exists = load(at, N)
  if exists and (rec.st or 0) < stamp then
    rec.st = stamp
    save(at, rec, N)
  end
end
return #ids
"""

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


class ContactWrite(msgspec.Struct, frozen=True, kw_only=True):
    contact_id: str
    fields: list[FieldWrite]
    person: str | None = None
    organisation: str | None = None


class CommitItem(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one contact's change: fields written now, fields found superseded."""

    write: ContactWrite
    dropped: list[FieldWrite] = []


class Owed(msgspec.Struct, array_like=True, frozen=True):
    """A value the change's source system may not hold: re-assert it there."""

    name: str
    value: Value
    stamp: int


class Verdict(msgspec.Struct, kw_only=True):
    contact_id: str
    busy_ms: int | None = None  # another writer holds the contact's lease (ms left)
    forgotten: bool = False  # the contact has a tombstone: no lease, nothing to write
    fresh: list[str] = []
    superseded: list[str] = []
    owed: list[Owed] = []

    @property
    def busy(self) -> bool:
        return self.busy_ms is not None


class Applied(msgspec.Struct, kw_only=True):
    contact_id: str
    forgotten: bool = False  # forgotten since the check: nothing recorded
    applied: list[str] = []
    late: list[str] = []  # superseded at the commit (our lease had run out and a newer change won)
    owed: list[Owed] = []


class Lease(msgspec.Struct, frozen=True):
    token: str
    verdicts: list[Verdict]


def _names(value: Any) -> list[Any]:
    # Lua's cjson writes an empty table as {}.
    return value if isinstance(value, list) else []


def _owed(value: Any) -> list[Owed]:
    return [Owed(str(n), v, int(s)) for n, v, s in _names(value)]


class Ordering:
    """The check, commit, settle and pending steps, each one atomic in Redis."""

    def __init__(self, client: redis.Redis, *, max_age_s: float = PENDING_MAX_AGE_S) -> None:
        self.client = client
        self.max_age_s = int(max_age_s)
        self._check = client.register_script(_CHECK)
        self._commit = client.register_script(_COMMIT)
        self._stage = client.register_script(_STAGE)
        self._touch = client.register_script(_TOUCH)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    @staticmethod
    def _keys(contact_ids: Sequence[str], *, leases: bool = True) -> list[str]:
        """The scripts' KEYS: field names, tombstones, each contact's state keys, then (``leases``) its lease."""
        state = [k for cid in contact_ids for k in keys.state_keys(cid)]
        return [keys.FIELDS, keys.FORGOTTEN, *state, *(keys.lease(cid) for cid in contact_ids if leases)]

    def check(self, into: Target, writes: Sequence[ContactWrite], *, lease_s: float) -> Lease:
        """Lease each contact and sort its fields into fresh and superseded; busy contacts get no lease.

        The lease's token starts with the system written into (``s:`` / ``a:``), so a producer
        can tell that a write into its own system is in flight (``writing_into``).
        """
        token = f"{_CODE[into]}:{uuid.uuid4().hex}"
        if not writes:
            return Lease(token, [])
        spec = [[[f.name, f.stamp, f.base] for f in w.fields] for w in writes]
        ids = [w.contact_id for w in writes]
        raw = self._check(
            keys=self._keys(ids),
            args=[token, max(1, int(lease_s * 1000)), _CODE[into], self.max_age_s, msgspec.json.encode(spec),
                  msgspec.json.encode(ids)],
        )
        verdicts = []
        for write, answer in zip(writes, msgspec.json.decode(raw), strict=True):
            if "forgotten" in answer:
                verdicts.append(Verdict(contact_id=write.contact_id, forgotten=True))
            elif "busy" in answer:
                verdicts.append(Verdict(contact_id=write.contact_id, busy_ms=max(0, int(answer["busy"]))))
            else:
                verdicts.append(Verdict(
                    contact_id=write.contact_id, fresh=_names(answer.get("fresh")),
                    superseded=_names(answer.get("stale")), owed=_owed(answer.get("owed")),
                ))
        return Lease(token, verdicts)

    def commit(
        self, into: Target | Literal["both"], token: str, items: Sequence[CommitItem], *, release: bool = True
    ) -> list[Applied]:
        """Apply written fields that are still fresh, forget superseded ones, release the leases."""
        if not items:
            return []
        spec = [
            {
                "w": [[f.name, f.value, f.stamp, f.base] for f in item.write.fields],
                "d": [[f.name, f.stamp] for f in item.dropped],
                "p": item.write.person,
                "o": item.write.organisation,
                "id": item.write.contact_id,
            }
            for item in items
        ]
        raw = self._commit(
            keys=self._keys([item.write.contact_id for item in items]),
            args=[token, _CODE.get(into, "b"), self.max_age_s, "1" if release else "0", msgspec.json.encode(spec)],
        )
        return [
            Applied(contact_id=item.write.contact_id, applied=_names(a.get("applied")),
                    late=_names(a.get("late")), owed=_owed(a.get("owed")), forgotten="forgotten" in a)
            for item, a in zip(items, msgspec.json.decode(raw), strict=True)
        ]

    def settle(self, writes: Sequence[ContactWrite]) -> list[Applied]:
        """Record values both systems already hold (no write needed), under the same newer-wins rule."""
        items = [CommitItem(write=w) for w in writes]
        return [a for start in range(0, len(items), _SCRIPT_BATCH)
                for a in self.commit("both", "", items[start:start + _SCRIPT_BATCH], release=False)]

    def release(self, token: str, contact_ids: Sequence[str]) -> None:
        """Give back leases taken by ``check`` that no commit released."""
        pipe = self.client.pipeline(transaction=False)
        for cid in contact_ids:
            pipe.evalsha(self._release.sha, 1, keys.lease(cid), token)
        try:
            pipe.execute()
        except redis.exceptions.NoScriptError:
            for cid in contact_ids:
                self._release(keys=[keys.lease(cid)], args=[token])

    def writing_into(self, into: Target, contact_ids: Sequence[str]) -> set[str]:
        """The contacts a worker is writing into ``into`` right now (leased, not yet committed).

        A read of that system can already show the write while the agreed state does not:
        the producer leaves such a contact to its next poll instead of taking our write
        for an edit.
        """
        if not contact_ids:
            return set()
        prefix = f"{_CODE[into]}:".encode()
        tokens = self.client.mget([keys.lease(cid) for cid in contact_ids])
        return {cid for cid, token in zip(contact_ids, tokens, strict=True)
                if token is not None and keys.as_bytes(token).startswith(prefix)}

    def renew(self, token: str, contact_id: str, *, lease_s: float) -> bool:
        """Extend our lease on one contact for one more call; False when it is no longer ours."""
        return bool(self._renew(keys=[keys.lease(contact_id)], args=[token, max(1, int(lease_s * 1000))]))

    def touch(self, changes: Sequence[tuple[str, int]]) -> None:
        """Note Spotler changes that were not our own writes (contact, Spotler's lastChanged)."""
        for start in range(0, len(changes), _SCRIPT_BATCH):
            chunk = changes[start:start + _SCRIPT_BATCH]
            self._touch(keys=[keys.FIELDS, *(k for cid, _ in chunk for k in keys.state_keys(cid))],
                        args=[msgspec.json.encode([stamp for _, stamp in chunk]),
                              msgspec.json.encode([cid for cid, _ in chunk])])

    def now_ms(self) -> int:
        """Redis's clock, the one the commits stamp ``ws``/``wa`` with."""
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def stage(self, into: Target, writes: Sequence[ContactWrite]) -> None:
        """Note enqueued changes as on their way into ``into`` (after the enqueue, never before).

        In calls of ``_SCRIPT_BATCH`` contacts: each contact's step is atomic on its own, and a
        page's worth in one call would hold its whole argument in Redis's memory at once.
        """
        writes = [w for w in writes if w.fields]
        for start in range(0, len(writes), _SCRIPT_BATCH):
            chunk = writes[start:start + _SCRIPT_BATCH]
            spec = [[[f.name, f.value, f.stamp] for f in w.fields] for w in chunk]
            ids = [w.contact_id for w in chunk]
            self._stage(keys=self._keys(ids, leases=False),
                        args=[_CODE[into], msgspec.json.encode(spec), msgspec.json.encode(ids)])
