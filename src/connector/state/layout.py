"""Where a contact's agreed state lives in Redis, and how it is packed there.

A state has two parts, each a msgpack array in a small hash of its bucket:

- the **record** (``connector:states:<bucket>``, hash field = ContactId):
  ``[F, S, p, o, ws, wa, st, at]``, trailing zeros dropped. ``S`` lists the
  distinct stamps once (the fields of one change share one); ``F`` is flat,
  per field ``index, code[, value]``, no value when it is null, with
  ``code = ((((s · 2 + ps) · 2 + pa) · 2 + owed) · 2 + null) · 4 + into``:
  ``s`` the stamp's position in ``S``, into 0 none, 1 Spotler, 2 AFAS, 3 both,
  and ``ps`` / ``pa`` set when a pending change of the field repeats its
  agreed value and stamp, enqueued at ``at``. That is what a producer leaves
  when a worker commits a change before the producer has noted it as pending
  (it notes after the enqueue): the usual case, kept in two bits;
- the other **pending** changes (``connector:pending:<bucket>``), only while
  there are some: ``[PS, PA, S, A]``, per change ``index, stamp's position in
  S · 2 + null, its at's position in A[, value]``.

A field's *index* is its position in ``connector:fields``, a list of field
names that a script appends to when it meets a new name and that is never
reordered, so a record carries no names. The meaning of every part is that of
``connector.state.agreed``; only the packing is new.

Why this shape: Redis keeps a hash of at most 128 fields of at most 64 bytes
each (the defaults of ``hash-max-listpack-entries`` / ``-value``, which managed
Redis does not let one change) in one compact listpack, a few bytes per entry,
where a key of its own costs about 60 bytes before its value. So a bucket holds
32 contacts (ContactId ÷ 32; a ContactId that is not a plain number goes to one
of 65,536 buckets by its CRC-32), and a part longer than 63 bytes is split into
63-byte chunks in the same hash: chunk 0 under the ContactId, starting with the
number of chunks, chunk k under ``-<ContactId><k>`` (a negative integer, which a
listpack stores in a few bytes; ``\\0<k>:<ContactId>`` for other ids). Pending
changes live in buckets of their own (ContactId ÷ 16) because they come and go:
a record hash that once grew past the limits stays in the larger encoding
for good, and a pending hash is deleted when its last change is applied.

The state of a link from before this layout (one string per contact,
``connector:agreed:<ContactId>``, JSON or an older msgpack map) is read
wherever it is. The first write of such a contact stores it packed and, in
the same atomic step, replaces the old key's value by a short marker that is
not JSON, so that a process of the earlier version still running (a platform
that starts the new containers before it stops the old ones) fails on the
contact and retries, instead of reading "no state" and writing what the
packed state would refuse. ``connector migrate``, run once no earlier process
is left, packs every contact and deletes the old keys and markers. Should
both forms exist anyway (an earlier process wrote after this one), each field
keeps whichever has the newer stamp.

Everything here runs inside Redis (the Lua below), so reading, changing and
writing one contact's state is one atomic step; Python only ever sees a state
as ``connector.state.agreed`` decodes it.
"""

from __future__ import annotations

__all__ = ["ERASE", "LUA", "MIGRATE", "READ"]

# The functions every state script uses. A contact is a table {hk, pk, ok, id}: its record
# bucket, its pending bucket, its old key and its ContactId; N the field names of connector:fields.
LUA = r"""
local CHUNK = 63
local INTO = {[''] = 0, s = 1, a = 2, b = 3}
local INTO_OF = {[0] = '', [1] = 's', [2] = 'a', [3] = 'b'}

local function chunk_name(id, k)
  if k == 0 then return id end
  if #id <= 18 and (id == '0' or string.find(id, '^[1-9]%d*$')) then
    if k < 10 then return '-' .. id .. k end
    return '-' .. id .. '_' .. k
  end
  return '\0' .. k .. ':' .. id
end

local function get_bytes(hk, id)
  local first = redis.call('HGET', hk, id)
  if not first then return nil, 0 end
  local n, at = string.byte(first, 1), 2
  if n == 255 then n, at = string.byte(first, 2) * 256 + string.byte(first, 3), 4 end
  local parts = {string.sub(first, at)}
  if n > 1 then
    local names = {}
    for k = 1, n - 1 do names[k] = chunk_name(id, k) end
    local rest = redis.call('HMGET', hk, unpack(names))
    for k = 1, n - 1 do
      if not rest[k] then error('connector: a chunk of a packed state is missing') end
      parts[k + 1] = rest[k]
    end
  end
  return table.concat(parts), n
end

local function put_bytes(hk, id, bytes, old_n)
  local n = 0
  if bytes then
    n = math.ceil((#bytes + 1) / CHUNK)
    local data
    if n < 255 then
      data = string.char(n) .. bytes
    else
      n = math.ceil((#bytes + 3) / CHUNK)
      data = string.char(255, math.floor(n / 256), n % 256) .. bytes
    end
    local args = {}
    for k = 0, n - 1 do
      args[#args + 1] = chunk_name(id, k)
      args[#args + 1] = string.sub(data, k * CHUNK + 1, (k + 1) * CHUNK)
    end
    redis.call('HSET', hk, unpack(args))
  end
  if old_n > n then
    local gone = {}
    for k = n, old_n - 1 do gone[#gone + 1] = chunk_name(id, k) end
    redis.call('HDEL', hk, unpack(gone))
  end
  return n
end

local function names_load(fk)
  local list = redis.call('LRANGE', fk, 0, -1)
  local pos = {}
  for i, name in ipairs(list) do pos[name] = i - 1 end
  return {key = fk, list = list, pos = pos}
end

local function name_index(N, name)
  local i = N.pos[name]
  if i == nil then
    i = #N.list
    N.list[i + 1] = name
    N.pos[name] = i
    if redis.call('RPUSH', N.key, name) ~= i + 1 then error('connector: the field names list changed') end
  end
  return i
end

local function name_at(N, i)
  local name = N.list[i + 1]
  if name == nil then error('connector: a packed state names a field connector:fields does not list') end
  return name
end

local function is_null(v) return v == nil or v == cjson.null end

local function ref(list, pos, v)
  local i = pos[v]
  if i == nil then
    list[#list + 1] = v
    i = #list - 1
    pos[v] = i
  end
  return i
end

local function by_index(tbl, N)
  local order = {}
  for name, v in pairs(tbl) do order[#order + 1] = {name_index(N, name), v, name} end
  table.sort(order, function(x, y) return x[1] < y[1] end)
  return order
end

-- A pending change that repeats its field's agreed value and stamp (a change staged after the
-- worker had already committed it) folds into the record: two bits of the field's code, and the
-- record's ``at``, the latest such change's. Others are stored in the pending bucket.
local function repeats(p, c)
  if p == nil or c == nil or (p[2] or 0) ~= (c[2] or 0) then return false end
  return p[1] == c[1] or (is_null(p[1]) and is_null(c[1]))
end

local function folded_at(rec)
  local at = 0
  for _, side in ipairs({'ps', 'pa'}) do
    for name, p in pairs(rec[side]) do
      if repeats(p, rec.f[name]) and (p[3] or 0) > at then at = p[3] or 0 end
    end
  end
  return at
end

local function folds(p, c, at) return repeats(p, c) and (p[3] or 0) == at end

local function encode_record(rec, N, at)
  local F, S, spos = {}, {}, {}
  for _, e in ipairs(by_index(rec.f, N)) do
    local name, c = e[3], e[2]
    local null = is_null(c[1]) and 1 or 0
    local owed = c[4] == 1 and 1 or 0
    local fps = folds(rec.ps[name], c, at) and 1 or 0
    local fpa = folds(rec.pa[name], c, at) and 1 or 0
    F[#F + 1] = e[1]
    F[#F + 1] = ((((ref(S, spos, c[2] or 0) * 2 + fps) * 2 + fpa) * 2 + owed) * 2 + null) * 4
                + (INTO[c[3] or ''] or 0)
    if null == 0 then F[#F + 1] = c[1] end
  end
  local t = {F, S, type(rec.p) == 'string' and rec.p or false, type(rec.o) == 'string' and rec.o or false,
             rec.ws or 0, rec.wa or 0, rec.st or 0, at}
  while #t > 2 and (t[#t] == false or t[#t] == 0) do t[#t] = nil end
  return cmsgpack.pack(t)
end

local function encode_pending(rec, N, at)
  local S, spos, A, apos = {}, {}, {}, {}
  local t, any = {}, false
  for j, side in ipairs({'ps', 'pa'}) do
    local P = {}
    for _, e in ipairs(by_index(rec[side], N)) do
      local p = e[2]
      if not folds(p, rec.f[e[3]], at) then
        local null = is_null(p[1]) and 1 or 0
        P[#P + 1] = e[1]
        P[#P + 1] = ref(S, spos, p[2] or 0) * 2 + null
        P[#P + 1] = ref(A, apos, p[3] or 0)
        if null == 0 then P[#P + 1] = p[1] end
        any = true
      end
    end
    t[j] = P
  end
  if not any then return nil end
  t[3], t[4] = S, A
  return cmsgpack.pack(t)
end

local function decode(record, pending, N)
  local rec = {f = {}, ps = {}, pa = {}}
  if record then
    local t = cmsgpack.unpack(record)
    local F, S, at, i = t[1], t[2], t[8] or 0, 1
    while i <= #F do
      local name, code = name_at(N, F[i]), F[i + 1]
      local into = code % 4
      code = (code - into) / 4
      local null = code % 2
      code = (code - null) / 2
      local owed = code % 2
      code = (code - owed) / 2
      local fpa = code % 2
      code = (code - fpa) / 2
      local fps = code % 2
      local v = cjson.null
      if null == 0 then v = F[i + 2]; i = i + 3 else i = i + 2 end
      local stamp = S[(code - fps) / 2 + 1]
      rec.f[name] = {v, stamp, INTO_OF[into], owed}
      if fps == 1 then rec.ps[name] = {v, stamp, at} end
      if fpa == 1 then rec.pa[name] = {v, stamp, at} end
    end
    if t[3] then rec.p = t[3] end
    if t[4] then rec.o = t[4] end
    if t[5] and t[5] ~= 0 then rec.ws = t[5] end
    if t[6] and t[6] ~= 0 then rec.wa = t[6] end
    if t[7] and t[7] ~= 0 then rec.st = t[7] end
  end
  if pending then
    local t = cmsgpack.unpack(pending)
    local S, A = t[3], t[4]
    for j, tbl in ipairs({rec.ps, rec.pa}) do
      local P, i = t[j], 1
      while i <= #P do
        local name, code, at = name_at(N, P[i]), P[i + 1], A[P[i + 2] + 1]
        local null = code % 2
        local v = cjson.null
        if null == 0 then v = P[i + 3]; i = i + 4 else i = i + 3 end
        tbl[name] = {v, S[(code - null) / 2 + 1], at}
      end
    end
  end
  return rec
end

-- A state in the form from before this layout: JSON, or a msgpack map of values (before stamps).
local function decode_old(raw)
  if string.sub(raw, 1, 1) == '{' then
    local rec = cjson.decode(raw)
    rec.f = rec.f or {}; rec.ps = rec.ps or {}; rec.pa = rec.pa or {}
    return rec
  end
  local rec = {f = {}, ps = {}, pa = {}}
  for k, v in pairs(cmsgpack.unpack(raw)) do
    if k == '_person' then rec.p = v
    elseif k == '_organisation' then rec.o = v
    else rec.f[k] = {v, 0, '', 0} end
  end
  return rec
end

-- Both forms at once (an earlier version wrote after this one): per field the newer stamp wins.
local function merge(rec, old)
  for name, c in pairs(old.f) do
    local cur = rec.f[name]
    if cur == nil or (c[2] or 0) > (cur[2] or 0) then rec.f[name] = c end
  end
  for _, side in ipairs({'ps', 'pa'}) do
    for name, p in pairs(old[side]) do
      local cur = rec[side][name]
      if cur == nil or (p[2] or 0) > (cur[2] or 0) then rec[side][name] = p end
    end
  end
  if rec.p == nil then rec.p = old.p end
  if rec.o == nil then rec.o = old.o end
  for _, at in ipairs({'ws', 'wa', 'st'}) do
    if (old[at] or 0) > (rec[at] or 0) then rec[at] = old[at] end
  end
end

-- What a packed contact's old key holds until ``connector migrate`` deletes it: not JSON, so a
-- process of the earlier version still running fails on it (and retries) instead of taking the
-- contact for one without a state.
local RETIRED = '{packed'

-- The contact's state (an empty one when it has none) and whether it has one.
local function load(c, N)
  c.record, c.rn = get_bytes(c.hk, c.id)
  c.pending, c.pn = get_bytes(c.pk, c.id)
  c.old = redis.call('GET', c.ok)
  if c.old == RETIRED then c.old = false end
  local rec
  if c.record or c.pending then rec = decode(c.record, c.pending, N) end
  if c.old then
    local was = decode_old(c.old)
    if rec then merge(rec, was) else rec = was end
  end
  if rec then return rec, true end
  return {f = {}, ps = {}, pa = {}}, false
end

-- Store ``rec`` packed (only the parts that changed) and retire the old form.
local function save(c, rec, N)
  local at = folded_at(rec)
  local record = encode_record(rec, N, at)
  if record ~= c.record then c.rn = put_bytes(c.hk, c.id, record, c.rn) end
  local pending = encode_pending(rec, N, at)
  if pending ~= c.pending then c.pn = put_bytes(c.pk, c.id, pending, c.pn) end
  c.record, c.pending = record, pending
  if c.old then
    redis.call('SET', c.ok, RETIRED)
    c.old = false
  end
end

local function drop(hk, id)
  local first = redis.call('HGET', hk, id)
  if not first then return 0 end
  local n = string.byte(first, 1)
  if n == 255 then n = string.byte(first, 2) * 256 + string.byte(first, 3) end
  local names = {}
  for k = 0, n - 1 do names[#names + 1] = chunk_name(id, k) end
  redis.call('HDEL', hk, unpack(names))
  return 1
end

-- KEYS[f + 3i - 2 .. f + 3i]: the i-th contact's record bucket, pending bucket and old key.
local function contact(first, i, id)
  local at = first + 3 * (i - 1)
  return {hk = KEYS[at], pk = KEYS[at + 1], ok = KEYS[at + 2], id = id}
end
"""

# KEYS: field names, then per contact record bucket, pending bucket, old key. ARGV: ContactIds.
# Returns per contact the state as JSON (the shape ``connector.state.agreed`` decodes), or nil.
READ = LUA + """
local N = names_load(KEYS[1])
local out = {}
for i, id in ipairs(ARGV) do
  local rec, exists = load(contact(2, i, id), N)
  out[i] = exists and cjson.encode(rec) or false
end
return out
"""

# KEYS: per contact record bucket, pending bucket, old key. ARGV: ContactIds. Returns how many had a state.
ERASE = LUA + """
local n = 0
for i, id in ipairs(ARGV) do
  local c = contact(1, i, id)
  local had = drop(c.hk, id) + drop(c.pk, id) + redis.call('DEL', c.ok)
  if had > 0 then n = n + 1 end
end
return n
"""

# KEYS: field names, tombstones, then per contact record bucket, pending bucket, old key.
# ARGV: ContactIds. Packs each old key's state and deletes the key; returns {migrated, retired, absent, forgotten}.
MIGRATE = LUA + """
local N = names_load(KEYS[1])
local migrated, retired, absent, forgotten = 0, 0, 0, 0
for i, id in ipairs(ARGV) do
  local c = contact(3, i, id)
  local old = redis.call('GET', c.ok)
  if not old then
    absent = absent + 1
  elseif redis.call('ZSCORE', KEYS[2], id) then
    forgotten = forgotten + 1
  elseif old == RETIRED then
    retired = retired + 1
  else
    local rec = load(c, N)
    save(c, rec, N)
    migrated = migrated + 1
  end
  if old then redis.call('DEL', c.ok) end
end
return {migrated, retired, absent, forgotten}
"""
