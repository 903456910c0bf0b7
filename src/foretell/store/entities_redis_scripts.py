"""The Lua scripts the Redis entity store runs on the server, each one atomic.

Key layout and why each step is a script: `entities_redis`'s docstring. Scripts touch only
the keys of one table (one hash slot), never the set of table names.
"""

from __future__ import annotations

from foretell.store.redis_connection import HMGET_SLICES

__all__ = ["BEGIN", "DROP", "READ", "SET_FEATURES", "SET_INTERACTION", "SWEEP", "SWITCH"]

BEGIN = """
local n = redis.call('INCR', ARGV[1] .. 'next')
redis.call('SADD', ARGV[1] .. 'storages', n)
return n
"""

# Moves the storages up to `upto` out of use: nothing reads them from now on, the sweep deletes them.
_RETIRE = """
local function retire(base, upto)
  for _, s in ipairs(redis.call('SMEMBERS', base .. 'storages')) do
    if tonumber(s) <= upto then redis.call('SMOVE', base .. 'storages', base .. 'retired', s) end
  end
end
"""

# KEYS: table. ARGV: base, storage, kind, description. A storage already retired (a later load
# switched first) is refused and retired with whatever it wrote since.
SWITCH = (
    _RETIRE
    + """
local base, n = ARGV[1], ARGV[2]
if redis.call('SISMEMBER', base .. 'storages', n) == 0 then
  redis.call('SADD', base .. 'retired', n)
  return 'superseded'
end
redis.call('DEL', KEYS[1], base .. 'events')
redis.call('HSET', KEYS[1], 'storage', n, 'kind', ARGV[3], 'description', ARGV[4])
retire(base, tonumber(n) - 1)
return 'ok'
"""
)

# KEYS: table. ARGV: base. Loads begun after the table's storage are left to finish.
DROP = (
    _RETIRE
    + """
local n = redis.call('HGET', KEYS[1], 'storage')
if not n then return 0 end
redis.call('DEL', KEYS[1], ARGV[1] .. 'events')
retire(ARGV[1], tonumber(n))
return 1
"""
)

# ARGV: base, how many keys at most. Deletes part of one retired storage; 0 once none is left.
SWEEP = """
local base = ARGV[1]
local s = redis.call('SRANDMEMBER', base .. 'retired')
if not s then return 0 end
local popped = redis.call('SPOP', base .. 'keys:' .. s, tonumber(ARGV[2]))
if #popped > 0 then
  local names = {}
  for i, key in ipairs(popped) do names[i] = base .. 'items:' .. s .. ':' .. key end
  redis.call('UNLINK', unpack(names))
  return #popped
end
redis.call('UNLINK', base .. 'rows:' .. s, base .. 'updated:' .. s)
redis.call('SREM', base .. 'retired', s)
return 1
"""

# KEYS: table. ARGV: base, then the keys. Per key: the row (features), the flat list of item,
# value, … (interactions), or false; then each key's updated_at, false for "at the load".
READ = (
    HMGET_SLICES
    + """
local base = ARGV[1]
local found = redis.call('HMGET', KEYS[1], 'storage', 'kind', 'description')
local n = found[1]
if not n then return false end
local rows = {}
if found[2] == 'features' then
  rows = fetch(base .. 'rows:' .. n)
else
  local keys = base .. 'keys:' .. n
  for i = 2, #ARGV do
    rows[i - 1] = redis.call('SISMEMBER', keys, ARGV[i]) == 1
                  and redis.call('HGETALL', base .. 'items:' .. n .. ':' .. ARGV[i])
  end
end
return {found[3], rows, fetch(base .. 'updated:' .. n)}
"""
)

# How an event script starts. KEYS: table. ARGV: base, storage, key, stamp, "1" and the event
# id (or "0" and ""). Stops unless the pointer still names the storage the caller checked the
# event against, and at an event id seen before; else the event id is recorded.
_EVENT = """
local base, n, key, stamp = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', KEYS[1], 'storage') ~= n then return 'moved' end
if ARGV[5] == '1' and redis.call('HSETNX', base .. 'events', ARGV[6], stamp) == 0 then return 'seen' end
redis.call('HSET', base .. 'updated:' .. n, key, stamp)
"""

# ARGV after the event's: the whole row for a key the table lacks, then pairs of a column's
# position (from 1) and its new JSON text. The row is split at its top-level commas, stepping
# over strings (whose commas and brackets are text) and nested values, as our encoders write
# it: without spaces.
SET_FEATURES = (
    _EVENT
    + """
local function elements(text)
  local out, start, at, depth = {}, 2, 2, 0
  while true do
    at = string.find(text, '[",%[%]{}]', at)
    local c = string.sub(text, at, at)
    if c == '"' then
      repeat
        at = string.find(text, '["\\\\]', at + 1)
        local quote = string.sub(text, at, at) == '"'
        if not quote then at = at + 1 end
      until quote
      at = at + 1
    elseif c == '[' or c == '{' then
      depth, at = depth + 1, at + 1
    elseif depth > 0 then
      if c ~= ',' then depth = depth - 1 end
      at = at + 1
    else
      out[#out + 1] = string.sub(text, start, at - 1)
      if c == ']' then return out end
      start, at = at + 1, at + 1
    end
  end
end
local rows = base .. 'rows:' .. n
local row = redis.call('HGET', rows, key)
if row then
  local parts = elements(row)
  for i = 8, #ARGV, 2 do parts[tonumber(ARGV[i])] = ARGV[i + 1] end
  row = '[' .. table.concat(parts, ',') .. ']'
else
  row = ARGV[7]
end
redis.call('HSET', rows, key, row)
return 'ok'
"""
)

# ARGV after the event's: item, value.
SET_INTERACTION = (
    _EVENT
    + """
redis.call('HSET', base .. 'items:' .. n .. ':' .. key, ARGV[7], ARGV[8])
redis.call('SADD', base .. 'keys:' .. n, key)
return 'ok'
"""
)
